# LibTorch taken straight from a PyTorch installation's files (torch/include, torch/lib), without
# its CMake package. For a CUDA wheel whose Caffe2Config.cmake cannot find what it looks for (the
# CUDA toolkit laid out differently, NVTX): loraplan compiles no CUDA code and only needs the
# headers, the libraries and the CUDA runtime's header and library for cuda_meter.cc.
#
#   -DLORAPLAN_TORCH_WHEEL=/path/to/site-packages/torch [-DLORAPLAN_CUDA_ROOT=/usr/local/cuda]
#
# Sets what find_package(Torch) would for this project: Torch_FOUND, Torch_VERSION,
# TORCH_INCLUDE_DIRS, TORCH_LIBRARIES, and CAFFE2_USE_CUDA when the wheel has CUDA.
set(_wheel "${LORAPLAN_TORCH_WHEEL}")
if(NOT EXISTS "${_wheel}/include/torch/csrc/api/include/torch/version.h")
  message(FATAL_ERROR "LORAPLAN_TORCH_WHEEL=${_wheel}: no include/torch/csrc/api/include/torch/version.h there (expected a PyTorch package folder, e.g. .../site-packages/torch)")
endif()
file(STRINGS "${_wheel}/include/torch/csrc/api/include/torch/version.h" _version_lines
     REGEX "#define TORCH_VERSION_(MAJOR|MINOR|PATCH) ")
foreach(_line IN LISTS _version_lines)
  if(_line MATCHES "TORCH_VERSION_(MAJOR|MINOR|PATCH) ([0-9]+)")
    set(_torch_${CMAKE_MATCH_1} ${CMAKE_MATCH_2})
  endif()
endforeach()
set(Torch_VERSION "${_torch_MAJOR}.${_torch_MINOR}.${_torch_PATCH}")

set(TORCH_INCLUDE_DIRS "${_wheel}/include" "${_wheel}/include/torch/csrc/api/include")
set(TORCH_LIBRARIES)
foreach(_lib torch torch_cpu c10)
  find_library(LORAPLAN_LIB_${_lib} ${_lib} PATHS "${_wheel}/lib" NO_DEFAULT_PATH)
  if(NOT LORAPLAN_LIB_${_lib})
    message(FATAL_ERROR "LORAPLAN_TORCH_WHEEL=${_wheel}: lib${_lib}.so not found in its lib folder")
  endif()
  list(APPEND TORCH_LIBRARIES "${LORAPLAN_LIB_${_lib}}")
endforeach()

find_library(LORAPLAN_LIB_torch_cuda torch_cuda PATHS "${_wheel}/lib" NO_DEFAULT_PATH)
find_library(LORAPLAN_LIB_c10_cuda c10_cuda PATHS "${_wheel}/lib" NO_DEFAULT_PATH)
if(LORAPLAN_LIB_torch_cuda AND LORAPLAN_LIB_c10_cuda)
  # The CUDA runtime: a toolkit's, or the nvidia-cuda-runtime wheel beside torch (which ships
  # only the versioned libcudart.so.N).
  get_filename_component(_site "${_wheel}" DIRECTORY)
  file(GLOB _pip_cuda LIST_DIRECTORIES true "${_site}/nvidia/cu*" "${_site}/nvidia/cuda_runtime")
  set(_cuda_roots ${LORAPLAN_CUDA_ROOT} $ENV{CUDA_HOME} /usr/local/cuda ${_pip_cuda})
  set(_cuda_include_hints)
  set(_cuda_lib_hints)
  foreach(_root IN LISTS _cuda_roots)
    list(APPEND _cuda_include_hints "${_root}/include" "${_root}/targets/x86_64-linux/include")
    list(APPEND _cuda_lib_hints "${_root}/lib64" "${_root}/lib" "${_root}/targets/x86_64-linux/lib")
  endforeach()
  # c10/cuda's headers include both.
  find_path(LORAPLAN_CUDA_INCLUDE cuda_runtime_api.h HINTS ${_cuda_include_hints})
  find_path(LORAPLAN_CUDA_DRIVER_INCLUDE cuda.h HINTS ${_cuda_include_hints})
  find_library(LORAPLAN_CUDART NAMES cudart libcudart.so.13 libcudart.so.12 HINTS ${_cuda_lib_hints})
  if(NOT LORAPLAN_CUDA_INCLUDE OR NOT LORAPLAN_CUDA_DRIVER_INCLUDE OR NOT LORAPLAN_CUDART)
    message(FATAL_ERROR "LORAPLAN_TORCH_WHEEL: this PyTorch has CUDA but cuda_runtime_api.h (${LORAPLAN_CUDA_INCLUDE}), cuda.h (${LORAPLAN_CUDA_DRIVER_INCLUDE}) or libcudart (${LORAPLAN_CUDART}) was not found; set LORAPLAN_CUDA_ROOT to the CUDA toolkit")
  endif()
  list(APPEND TORCH_INCLUDE_DIRS "${LORAPLAN_CUDA_INCLUDE}" "${LORAPLAN_CUDA_DRIVER_INCLUDE}")
  list(REMOVE_DUPLICATES TORCH_INCLUDE_DIRS)
  # Linked even though nothing names their symbols: their static initializers register the
  # CUDA backend, and an --as-needed link would drop them.
  list(APPEND TORCH_LIBRARIES "-Wl,--no-as-needed" "${LORAPLAN_LIB_torch_cuda}" "${LORAPLAN_LIB_c10_cuda}"
       "-Wl,--as-needed" "${LORAPLAN_CUDART}")
  set(CAFFE2_USE_CUDA ON)
endif()
set(Torch_FOUND TRUE)
message(STATUS "loraplan: LibTorch ${Torch_VERSION} from ${_wheel} (CUDA: ${CAFFE2_USE_CUDA})")
