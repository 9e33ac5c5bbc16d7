# Writes the dashboard's page and assets as C++ string constants (cmake -P, at build time):
#   cmake -DOUTPUT=<file.inc> -DASSETS="name=path|..." -P embed_assets.cmake
# Every byte is a \x escape, so no content can end the literal early.
set(_out "// Generated from hosts/prpc/dashboard by embed_assets.cmake; do not edit.\n#pragma once\n#include <string_view>\n")
string(REPLACE "|" ";" _assets "${ASSETS}")
foreach(_pair IN LISTS _assets)
  string(FIND "${_pair}" "=" _eq)
  string(SUBSTRING "${_pair}" 0 ${_eq} _name)
  math(EXPR _from "${_eq} + 1")
  string(SUBSTRING "${_pair}" ${_from} -1 _path)
  file(READ "${_path}" _hex HEX)
  string(LENGTH "${_hex}" _len)
  math(EXPR _bytes "${_len} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" _escaped "${_hex}")
  # Lines of 32 bytes keep compilers and editors happy.
  string(REPEAT "\\\\x.." 32 _line)
  string(REGEX REPLACE "(${_line})" "\\1\"\n\"" _escaped "${_escaped}")
  string(APPEND _out "inline constexpr std::string_view ${_name}{\n\"${_escaped}\", ${_bytes}};\n")
endforeach()
file(WRITE "${OUTPUT}.tmp" "${_out}")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
