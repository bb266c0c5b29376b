# Cortex-M4F (Armv7E-M with DSP, single-precision FPU) with the GNU Arm toolchain and newlib:
#   cmake -G Ninja -DCMAKE_TOOLCHAIN_FILE=<tinysplit>/integrations/cmake/toolchains/arm-none-eabi-cortex-m4.cmake ...
# Board matters (start-up code, linker script, --specs=nosys.specs or rdimon.specs) belong to the project.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)
# No start-up code or linker script yet when CMake checks the compiler: do not link there.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(_tinysplit_cpu "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16")
set(CMAKE_C_FLAGS_INIT "${_tinysplit_cpu}")
set(CMAKE_CXX_FLAGS_INIT "${_tinysplit_cpu}")
set(CMAKE_ASM_FLAGS_INIT "${_tinysplit_cpu}")

# Build tools (tinysplit among them) come from the host; libraries and headers from the target.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
