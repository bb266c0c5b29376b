# tinysplit.cmake: compile an ONNX model with tinysplit as a build step.
#
#   include(<tinysplit>/integrations/cmake/tinysplit.cmake)    # or find_package(tinysplit), see tinysplit-config.cmake
#   tinysplit_add_model(<cmake-target> MODEL <model.onnx>
#                       [TARGET <profile>]              # device profile, default host
#                       [PREFIX <name>]                 # C symbol prefix, default model
#                       [QUANTIZE int8 CALIBRATION <file>]
#                       [OPTIONS <compile options>...]  # passed on, e.g. --input-shape input:1,28,28,1
#                       [OUTPUT_DIR <dir>])             # default <binary dir>/tinysplit/<cmake-target>-<prefix>
#
# <cmake-target> gets the generated model.c and the runtime's kernels as sources, and OUTPUT_DIR/c and
# OUTPUT_DIR/c/runtime/include as include directories. The compiler runs at build time, again when the
# model, the calibration data, the target profile (read from tinysplit's dependency file) or the
# arguments change; files whose content did not change keep their time stamps, so nothing recompiles.
#
# The executable: the TINYSPLIT_EXECUTABLE cache variable, else `tinysplit` on the PATH. The model must
# exist at configure time: a first compile there lists the runtime's sources.

include_guard(GLOBAL)
cmake_policy(VERSION 3.20) # recorded by the function below: CMP0116 (Ninja rewrites DEPFILE paths)

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  # cmake -P: the build step's second half. tinysplit's dependency file names every generated file
  # as a target; Ninja wants the first output of the custom command there, the stamp, and only it.
  file(READ "${DEPS_IN}" deps)
  string(REPLACE " " "\\ " stamp "${STAMP}")
  string(REGEX REPLACE "^[^\n]*: " "${stamp}: " deps "${deps}")
  file(WRITE "${DEPFILE}" "${deps}")
  file(TOUCH "${STAMP}")
  return()
endif()

set(_TINYSPLIT_MODULE "${CMAKE_CURRENT_LIST_FILE}")
find_program(TINYSPLIT_EXECUTABLE tinysplit NO_CMAKE_FIND_ROOT_PATH DOC "The tinysplit compiler")

function(tinysplit_add_model target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "MODEL;TARGET;PREFIX;QUANTIZE;CALIBRATION;OUTPUT_DIR" "OPTIONS")
  if(NOT arg_MODEL)
    message(FATAL_ERROR "tinysplit_add_model(${target}): MODEL is required")
  endif()
  if(NOT TINYSPLIT_EXECUTABLE)
    message(FATAL_ERROR "tinysplit_add_model: tinysplit not found; set TINYSPLIT_EXECUTABLE or put it on the PATH")
  endif()
  if(NOT arg_TARGET)
    set(arg_TARGET host)
  endif()
  if(NOT arg_PREFIX)
    set(arg_PREFIX model)
  endif()
  if(NOT arg_OUTPUT_DIR)
    set(arg_OUTPUT_DIR "${CMAKE_CURRENT_BINARY_DIR}/tinysplit/${target}-${arg_PREFIX}")
  endif()
  cmake_path(ABSOLUTE_PATH arg_MODEL NORMALIZE)
  cmake_path(ABSOLUTE_PATH arg_OUTPUT_DIR BASE_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}" NORMALIZE)
  set(out "${arg_OUTPUT_DIR}")
  set(inputs "${arg_MODEL}")
  set(args compile "${arg_MODEL}" -o "${out}" --target ${arg_TARGET} --prefix ${arg_PREFIX})
  if(arg_QUANTIZE)
    list(APPEND args --quantize ${arg_QUANTIZE})
  endif()
  if(arg_CALIBRATION)
    cmake_path(ABSOLUTE_PATH arg_CALIBRATION NORMALIZE)
    list(APPEND args --calibration "${arg_CALIBRATION}")
    list(APPEND inputs "${arg_CALIBRATION}")
  endif()
  list(APPEND args ${arg_OPTIONS})

  # The arguments in a file rewritten only when they change: every generator reruns on new options.
  file(CONFIGURE OUTPUT "${out}.args" CONTENT "${args}\n" @ONLY)

  if(NOT EXISTS "${out}/c/model.c")
    message(STATUS "tinysplit: compiling ${arg_MODEL} once to list the generated sources")
    execute_process(COMMAND "${TINYSPLIT_EXECUTABLE}" ${args} RESULT_VARIABLE failed OUTPUT_QUIET ERROR_VARIABLE err)
    if(failed)
      message(FATAL_ERROR "tinysplit failed on ${arg_MODEL}:\n${err}")
    endif()
  endif()
  file(GLOB runtime_sources CONFIGURE_DEPENDS "${out}/c/runtime/src/*.c")
  set(sources "${out}/c/model.c" ${runtime_sources})

  set(stamp "${out}.stamp")
  set(depfile "${out}.d")
  if(CMAKE_GENERATOR MATCHES "Ninja|Makefiles")
    set(depfile_args DEPFILE "${depfile}")
  endif()
  add_custom_command(
    OUTPUT "${stamp}" ${sources} "${out}/c/model.h"
    COMMAND "${TINYSPLIT_EXECUTABLE}" ${args} --emit-deps "${depfile}.in"
    COMMAND "${CMAKE_COMMAND}" "-DDEPS_IN=${depfile}.in" "-DDEPFILE=${depfile}" "-DSTAMP=${stamp}"
            -P "${_TINYSPLIT_MODULE}"
    DEPENDS ${inputs} "${out}.args"
    ${depfile_args}
    COMMENT "tinysplit: compiling ${arg_MODEL} for ${arg_TARGET}"
    VERBATIM)
  target_sources(${target} PRIVATE ${sources})
  target_include_directories(${target} PUBLIC "${out}/c" "${out}/c/runtime/include")
  if(NOT MSVC)
    target_link_libraries(${target} PRIVATE m) # float kernels call expf and friends
  endif()
endfunction()
