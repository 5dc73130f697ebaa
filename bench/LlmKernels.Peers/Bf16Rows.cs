using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LlmKernels.Peers;

/// <summary>
/// bf16 rows to f32 and back, vectorised: what a .NET user needs around TensorPrimitives, which
/// has no bfloat16 overloads in System.Numerics.Tensors 10. Narrowing rounds to nearest even;
/// the vector path does not special-case NaN (benchmark data is finite), the scalar tail does.
/// </summary>
public static unsafe class Bf16Rows
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Widen(ushort* source, float* destination, long count)
    {
        long i = 0;
        for (; i + 16 <= count; i += 16)
        {
            var (lower, upper) = Vector256.Widen(Vector256.Load(source + i));
            Vector256.Store((lower << 16).AsSingle(), destination + i);
            Vector256.Store((upper << 16).AsSingle(), destination + i + 8);
        }
        for (; i < count; i++)
            destination[i] = Bf16Codec.Decode(source[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Narrow(float* source, ushort* destination, long count)
    {
        long i = 0;
        var half = Vector256.Create(0x7FFFu);
        for (; i + 16 <= count; i += 16)
        {
            var a = Vector256.Load(source + i).AsUInt32();
            var b = Vector256.Load(source + i + 8).AsUInt32();
            a = (a + half + ((a >> 16) & Vector256<uint>.One)) >> 16;
            b = (b + half + ((b >> 16) & Vector256<uint>.One)) >> 16;
            Vector256.Store(Vector256.Narrow(a, b), destination + i);
        }
        for (; i < count; i++)
            destination[i] = Bf16Codec.Encode(source[i]);
    }
}
