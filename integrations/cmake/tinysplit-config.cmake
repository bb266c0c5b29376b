# find_package(tinysplit) support: point tinysplit_DIR (or CMAKE_PREFIX_PATH) at this folder.
# Provides tinysplit_add_model() (see tinysplit.cmake) and TINYSPLIT_EXECUTABLE.
include("${CMAKE_CURRENT_LIST_DIR}/tinysplit.cmake")
if(NOT TINYSPLIT_EXECUTABLE)
  set(tinysplit_FOUND FALSE)
  set(tinysplit_NOT_FOUND_MESSAGE "the tinysplit executable was not found: set TINYSPLIT_EXECUTABLE or put it on the PATH")
endif()
