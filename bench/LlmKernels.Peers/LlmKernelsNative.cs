using LlmKernels.Interop;

namespace LlmKernels.Peers;

/// <summary>
/// What the "ours" peers of families without a public managed API yet need to call the generated
/// P/Invoke directly: the context's native handle for one call, and the lk_dtype of a case.
/// </summary>
internal static class LlmKernelsNative
{
    /// <summary>BenchDtype is spelled as lk_dtype: the values are the same.</summary>
    public static Dtype Of(BenchDtype dtype) => (Dtype)(int)dtype;

    /// <summary>A failed status as the managed API reports it (the native message names the argument).</summary>
    public static void ThrowIfFailed(Status status, string function) => NativeStatus.ThrowIfFailed(status, function);
}
