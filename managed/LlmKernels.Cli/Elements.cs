using System.Runtime.CompilerServices;

namespace LlmKernels.Cli;

/// <summary>float &lt;-&gt; element type conversions for the reference checks (float, Half, BFloat16).</summary>
internal static class Elements
{
    public static float ToFloat<T>(T value) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return Unsafe.As<T, float>(ref value);
        if (typeof(T) == typeof(Half)) return (float)Unsafe.As<T, Half>(ref value);
        return (float)Unsafe.As<T, BFloat16>(ref value);
    }

    public static T FromFloat<T>(float value) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return Unsafe.As<float, T>(ref value);
        if (typeof(T) == typeof(Half)) { Half h = (Half)value; return Unsafe.As<Half, T>(ref h); }
        BFloat16 b = (BFloat16)value;
        return Unsafe.As<BFloat16, T>(ref b);
    }

    /// <summary>What storing <paramref name="value"/> as T and reading it back gives.</summary>
    public static float Round<T>(float value) where T : unmanaged => ToFloat(FromFloat<T>(value));

    public static string Name<T>() =>
        typeof(T) == typeof(float) ? "f32" : typeof(T) == typeof(Half) ? "f16" : "bf16";
}
