using System.Runtime.CompilerServices;

namespace LlmKernels.Tests;

/// <summary>The three element types the kernels take, seen as floats: conversions, NaN, and one ulp.</summary>
internal static class Element
{
    internal static float ToFloat<T>(T value) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return Unsafe.As<T, float>(ref value);
        if (typeof(T) == typeof(Half)) return (float)Unsafe.As<T, Half>(ref value);
        if (typeof(T) == typeof(BFloat16)) return (float)Unsafe.As<T, BFloat16>(ref value);
        throw new NotSupportedException(typeof(T).Name);
    }

    /// <summary>Rounds to nearest even: float's and Half's own conversions; BFloat16Tests pins down BFloat16's.</summary>
    internal static T FromFloat<T>(float value) where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return Unsafe.As<float, T>(ref value);
        if (typeof(T) == typeof(Half)) { Half h = (Half)value; return Unsafe.As<Half, T>(ref h); }
        if (typeof(T) == typeof(BFloat16)) { BFloat16 b = (BFloat16)value; return Unsafe.As<BFloat16, T>(ref b); }
        throw new NotSupportedException(typeof(T).Name);
    }

    internal static T NaN<T>() where T : unmanaged => FromFloat<T>(float.NaN);

    internal static float[] ToFloats<T>(ReadOnlySpan<T> values) where T : unmanaged
    {
        var result = new float[values.Length];
        for (int i = 0; i < values.Length; i++)
            result[i] = ToFloat(values[i]);
        return result;
    }

    /// <summary>Explicit mantissa bits of <typeparamref name="T"/>.</summary>
    internal static int MantissaBits<T>() where T : unmanaged =>
        typeof(T) == typeof(float) ? 23 : typeof(T) == typeof(Half) ? 10 : typeof(T) == typeof(BFloat16) ? 7
        : throw new NotSupportedException(typeof(T).Name);

    /// <summary>The spacing of <typeparamref name="T"/> values at <paramref name="magnitude"/> (normal range).</summary>
    internal static double Ulp<T>(double magnitude) where T : unmanaged =>
        magnitude == 0 ? 0 : Math.ScaleB(1.0, Math.ILogB(magnitude) - MantissaBits<T>());

    /// <summary>Random values of <typeparamref name="T"/> (already rounded, so every reference sees the same inputs).</summary>
    internal static T[] Random<T>(Random random, int length, float low, float high) where T : unmanaged
    {
        var result = new T[length];
        for (int i = 0; i < length; i++)
            result[i] = FromFloat<T>(low + (high - low) * random.NextSingle());
        return result;
    }
}
