namespace LlmKernels;

/// <summary>
/// The CUDA kernels over raw device pointers, for tensors another library owns (TorchSharp, ONNX Runtime, cuBLAS workspaces) whose
/// element type is a run-time value: one method per CUDA entry point of <c>llmkernels_cuda.h</c>, taking the pointers, the
/// shape, a <see cref="TensorDataType"/> and a <c>cudaStream_t</c> (0: CUDA's legacy default stream), and filling the entry point's
/// params struct. The typed overloads on <see cref="Kernels"/>, <see cref="KvCache"/>, <see cref="Attention"/> and <see cref="Moe"/>
/// over <see cref="DeviceSpan{T}"/> check lengths and overlaps first and then call these.
/// </summary>
/// <remarks>
/// <para>Parameter names are the typed overloads'; lengths cannot be checked here (a pointer has none), so the sizes given are
/// trusted. The native library checks everything else the host can see before it launches anything, and a bad argument is an
/// <see cref="ArgumentException"/> naming the parameter (the camelCase of the C field where no typed parameter corresponds, such as
/// <c>xStride</c>). Strides are in elements; 0 means the row's own length.</para>
/// <para>Every call is asynchronous: it returns once the work is queued on the stream. Indices read from device memory are checked by
/// the kernels and reported at the next <see cref="CudaStream.Synchronize"/> (docs/cuda/managed.md).</para>
/// </remarks>
public static partial class CudaKernels
{
}
