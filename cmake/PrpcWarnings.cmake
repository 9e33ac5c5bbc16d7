# Per-target warning and sanitizer settings; no global flag edits.
function(prpc_enable_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
    -Woverloaded-virtual -Wconversion -Wsign-conversion -Wdouble-promotion
    -Wformat=2 -Wimplicit-fallthrough)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 at -O2 reports std::variant/std::optional members as "maybe uninitialized" where
    # they are not (GCC bugs 105593, 107138); the warning is noise for this code base.
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    # GCC 12 at -O3 flags `"literal" + std::string` as overlapping memcpy (GCC bug 105329).
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(PRPC_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Sanitizers apply to everything the project builds, so they are added once here as a
# directory-level option when requested (a preset switches them on).
if(PRPC_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# The fuzz preset (clang): coverage for libFuzzer and both sanitizers on every object, and the
# standard library's own bounds checks; the fuzzers themselves link -fsanitize=fuzzer.
if(PRPC_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined -D_GLIBCXX_ASSERTIONS
                      -fsanitize-ignorelist=${CMAKE_CURRENT_LIST_DIR}/fuzz-ignorelist.txt)
  add_link_options(-fsanitize=address,undefined)
endif()
