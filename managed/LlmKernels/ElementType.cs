using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>Maps the element types the kernels accept to the native <c>lk_dtype</c>.</summary>
internal static class ElementType
{
    /// <exception cref="NotSupportedException"><typeparamref name="T"/> is not float, Half or BFloat16.</exception>
    internal static Dtype Of<T>() where T : unmanaged
    {
        // Each branch is a JIT-time constant for a given T, so this folds to one value.
        if (typeof(T) == typeof(float)) return Dtype.F32;
        if (typeof(T) == typeof(Half)) return Dtype.F16;
        if (typeof(T) == typeof(BFloat16)) return Dtype.Bf16;
        throw new NotSupportedException($"Element type {typeof(T)} is not supported: use float, Half or BFloat16.");
    }
}
