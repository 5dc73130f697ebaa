// test_cuda_ptx.cu compiled as C++ over the emulator (a source's language is per directory in
// CMake, and the same directory builds the nvcc variant).
#include "test_cuda_ptx.cu"
