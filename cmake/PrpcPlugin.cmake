# prpc_add_plugin(<target> SOURCES <files...> [LINK <libs...>] [OUTPUT_DIRECTORY <dir>])
#
# Builds a PRPC plugin: a MODULE library named <target>.so (no "lib" prefix; name it
# prpc_<kind>_<name> so hosts find it by convention) that exports exactly one dynamic symbol,
# prpc_plugin_entry. Everything else is hidden by visibility flags and a linker version script.
# Used in this tree and, installed, by out-of-tree plugin authors (find_package(prpc)).
function(prpc_add_plugin target)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES;LINK" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "prpc_add_plugin(${target}): SOURCES is required")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE prpc::sdk ${ARG_LINK})
  set(_map "${CMAKE_CURRENT_BINARY_DIR}/${target}.map")
  file(WRITE "${_map}" "{\n  global: prpc_plugin_entry;\n  local: *;\n};\n")
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LINK_DEPENDS "${_map}")
  target_link_options(${target} PRIVATE "LINKER:--version-script=${_map}" "LINKER:--no-undefined")
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  endif()
endfunction()
