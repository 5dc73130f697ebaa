# The CUDA library's sources, one per kernel family, shared by the real library (CMakeLists.txt
# here) and the emulated one (emu/CMakeLists.txt). A family's file is listed before it exists;
# only files present are built, so families land one at a time.
set(LK_CUDA_SOURCE_NAMES
  runtime.cu
  norm.cu
  activation.cu
  rope.cu
  kv_cache.cu
  attention.cu
  attention_prefill.cu
  attention_decode.cu
  moe_gating.cu
  moe_routing.cu)
set(LK_CUDA_SOURCES "")
foreach(name ${LK_CUDA_SOURCE_NAMES})
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/${name})
    list(APPEND LK_CUDA_SOURCES ${CMAKE_CURRENT_LIST_DIR}/${name})
  endif()
endforeach()
