using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>
/// The CUDA runtime or driver failed (the native <c>LK_ERR_DEVICE</c>): the message is the library's entry point, the CUDA call
/// that failed, the CUDA error's name and its text, for example
/// <c>lk_cuda_memcpy: cudaMemcpy: cudaErrorInvalidValue: invalid argument (LK_ERR_DEVICE)</c>.
/// </summary>
/// <remarks>
/// A fault inside a kernel (an illegal address, say) is sticky in CUDA: the context is unusable afterwards and every later call
/// on it fails the same way. Bad indices in device memory are not such faults: the kernels check them and report an
/// <see cref="ArgumentException"/> at the next synchronisation (<see cref="CudaStream.Synchronize"/>).
/// </remarks>
public sealed class CudaException : LlmKernelsException
{
    internal CudaException(string message, string nativeMessage) : base(message, Status.ErrDevice) =>
        ErrorName = ErrorNameIn(nativeMessage);

    /// <summary>The CUDA error's name, such as <c>cudaErrorInvalidValue</c>; empty when the native message names none.</summary>
    public string ErrorName { get; }

    // The native message is "call: cudaErrorName: text" (docs/cuda.md); the call may itself hold ": ".
    private static string ErrorNameIn(string message)
    {
        foreach (Range part in message.AsSpan().Split(": "))
        {
            ReadOnlySpan<char> name = message.AsSpan()[part].Trim();
            if (name.StartsWith("cudaError", StringComparison.Ordinal) && !name.ContainsAny(' ', '(', ':'))
                return name.ToString();
        }
        return "";
    }
}
