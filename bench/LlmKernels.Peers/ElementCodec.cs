using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// How one stored element becomes an f32 and back. Peers written once over <c>TStorage</c> and a
/// codec struct get a specialised copy per element type from the JIT, with no virtual calls, which
/// is what a hand-written loop per type would compile to.
/// </summary>
public interface IElementCodec<TStorage> where TStorage : unmanaged
{
    static abstract BenchDtype Dtype { get; }
    static abstract float Decode(TStorage value);
    static abstract TStorage Encode(float value);
}

public readonly struct F32Codec : IElementCodec<float>
{
    public static BenchDtype Dtype => BenchDtype.F32;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Decode(float value) => value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Encode(float value) => value;
}

public readonly struct F16Codec : IElementCodec<Half>
{
    public static BenchDtype Dtype => BenchDtype.F16;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static float Decode(Half value) => (float)value;
    [MethodImpl(MethodImplOptions.AggressiveInlining)] public static Half Encode(float value) => (Half)value;
}

/// <summary>bfloat16 stored as its bit pattern: the upper half of a binary32.</summary>
public readonly struct Bf16Codec : IElementCodec<ushort>
{
    public static BenchDtype Dtype => BenchDtype.Bf16;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Decode(ushort value) => BitConverter.UInt32BitsToSingle((uint)value << 16);

    /// <summary>Round to nearest, ties to even, as PyTorch and the native kernels round; NaN stays NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Encode(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
            return (ushort)((bits >> 16) | 0x40);
        bits += 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)(bits >> 16);
    }
}

/// <summary>Element-wise access by <see cref="BenchDtype"/> for setup and verification code (not timed).</summary>
public static unsafe class Elements
{
    public static float Load(void* data, long index, BenchDtype dtype) => dtype switch
    {
        BenchDtype.F32 => ((float*)data)[index],
        BenchDtype.F16 => F16Codec.Decode(((Half*)data)[index]),
        _ => Bf16Codec.Decode(((ushort*)data)[index]),
    };

    public static void Store(void* data, long index, BenchDtype dtype, float value)
    {
        switch (dtype)
        {
            case BenchDtype.F32: ((float*)data)[index] = value; break;
            case BenchDtype.F16: ((Half*)data)[index] = F16Codec.Encode(value); break;
            default: ((ushort*)data)[index] = Bf16Codec.Encode(value); break;
        }
    }

    /// <summary>The value <paramref name="value"/> becomes when stored as <paramref name="dtype"/>.</summary>
    public static float Round(float value, BenchDtype dtype) => dtype switch
    {
        BenchDtype.F32 => value,
        BenchDtype.F16 => F16Codec.Decode(F16Codec.Encode(value)),
        _ => Bf16Codec.Decode(Bf16Codec.Encode(value)),
    };

    /// <summary>Converts <paramref name="count"/> f32 values into a buffer of <paramref name="dtype"/>.</summary>
    public static void Convert(float* source, void* destination, long count, BenchDtype dtype)
    {
        // Setup of the largest cases converts hundreds of MB: copy or narrow with vectors where exact.
        if (dtype == BenchDtype.F32)
            Buffer.MemoryCopy(source, destination, count * sizeof(float), count * sizeof(float));
        else if (dtype == BenchDtype.Bf16)
            Bf16Rows.Narrow(source, (ushort*)destination, count);
        else
            for (long i = 0; i < count; i++)
                Store(destination, i, dtype, source[i]);
    }

    /// <summary>A buffer holding <paramref name="count"/> f32 values converted to <paramref name="dtype"/>.</summary>
    public static NativeBuffer ToBuffer(float* source, long count, BenchDtype dtype)
    {
        var buffer = new NativeBuffer(count * dtype.Size());
        Convert(source, buffer.Pointer, count, dtype);
        return buffer;
    }
}
