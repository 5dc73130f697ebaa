using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>An unexpected failure inside the native library (not a bad argument, which throws
/// <see cref="ArgumentException"/>). A CUDA runtime or driver failure is the derived <see cref="CudaException"/>.</summary>
public class LlmKernelsException : Exception
{
    internal LlmKernelsException(string message, Status status) : base(message) => NativeStatus = (int)status;

    /// <summary>The native <c>lk_status</c> value.</summary>
    public int NativeStatus { get; }
}
