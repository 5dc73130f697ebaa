using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlmKernels.Peers;

/// <summary>
/// The loops the bandwidth ceilings time, one slice per thread. They mirror roofline.c: a plain
/// vector copy, a copy with streaming (non-temporal) stores, and a read-only sum with four
/// accumulators so that the add latency never limits the loads.
/// Each is called only a few times, so without AggressiveOptimization the JIT would run it as
/// tier-0 code patched by on-stack replacement, not the code a steady state gets.
/// </summary>
public static unsafe class MemoryProbes
{
    /// <summary>Floats per unrolled iteration: four 32-byte vectors, two cache lines.</summary>
    public const int Granule = 32;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void CopyPlain(float* source, float* destination, long start, long end)
    {
        for (long i = start; i < end; i += Granule)
        {
            var v0 = Vector256.LoadAligned(source + i);
            var v1 = Vector256.LoadAligned(source + i + 8);
            var v2 = Vector256.LoadAligned(source + i + 16);
            var v3 = Vector256.LoadAligned(source + i + 24);
            Vector256.StoreAligned(v0, destination + i);
            Vector256.StoreAligned(v1, destination + i + 8);
            Vector256.StoreAligned(v2, destination + i + 16);
            Vector256.StoreAligned(v3, destination + i + 24);
        }
    }

    /// <summary>
    /// Streaming stores skip the read-for-ownership a normal store pays on a cache miss, so the
    /// copy moves two bytes of traffic per byte counted instead of three; the fence makes the
    /// weakly ordered stores visible before the barrier ends the timing.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void CopyStreaming(float* source, float* destination, long start, long end)
    {
        for (long i = start; i < end; i += Granule)
        {
            var v0 = Avx.LoadAlignedVector256(source + i);
            var v1 = Avx.LoadAlignedVector256(source + i + 8);
            var v2 = Avx.LoadAlignedVector256(source + i + 16);
            var v3 = Avx.LoadAlignedVector256(source + i + 24);
            Avx.StoreAlignedNonTemporal(destination + i, v0);
            Avx.StoreAlignedNonTemporal(destination + i + 8, v1);
            Avx.StoreAlignedNonTemporal(destination + i + 16, v2);
            Avx.StoreAlignedNonTemporal(destination + i + 24, v3);
        }
        Sse.StoreFence();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float ReadSum(float* source, long start, long end)
    {
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        for (long i = start; i < end; i += Granule)
        {
            acc0 += Vector256.LoadAligned(source + i);
            acc1 += Vector256.LoadAligned(source + i + 8);
            acc2 += Vector256.LoadAligned(source + i + 16);
            acc3 += Vector256.LoadAligned(source + i + 24);
        }
        return Vector256.Sum(acc0 + acc1 + acc2 + acc3);
    }

    /// <summary>
    /// Ten independent FMA chains per thread: enough to cover the FMA latency (4 cycles) times
    /// two ports, as in roofline.c. Returns a value that depends on every chain so none is dropped.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float FmaChains(long iterations)
    {
        var x = Vector256.Create(1.0000001f);
        var y = Vector256.Create(0.9999999f);
        Vector256<float> a0 = Vector256.Create(0f), a1 = Vector256.Create(1f), a2 = Vector256.Create(2f),
            a3 = Vector256.Create(3f), a4 = Vector256.Create(4f), a5 = Vector256.Create(5f), a6 = Vector256.Create(6f),
            a7 = Vector256.Create(7f), a8 = Vector256.Create(8f), a9 = Vector256.Create(9f);
        for (long i = 0; i < iterations; i++)
        {
            a0 = Fma.MultiplyAdd(a0, x, y); a1 = Fma.MultiplyAdd(a1, x, y);
            a2 = Fma.MultiplyAdd(a2, x, y); a3 = Fma.MultiplyAdd(a3, x, y);
            a4 = Fma.MultiplyAdd(a4, x, y); a5 = Fma.MultiplyAdd(a5, x, y);
            a6 = Fma.MultiplyAdd(a6, x, y); a7 = Fma.MultiplyAdd(a7, x, y);
            a8 = Fma.MultiplyAdd(a8, x, y); a9 = Fma.MultiplyAdd(a9, x, y);
        }
        return Vector256.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9);
    }

    /// <summary>FLOPs of <see cref="FmaChains"/>: ten FMAs of eight lanes, two FLOPs each, per iteration.</summary>
    public const long FmaFlopsPerIteration = 10 * 8 * 2;

    /// <summary>
    /// Twelve independent 512-bit FMA chains per thread: a core with two 512-bit FMA units and a
    /// 4-cycle latency needs at least eight in flight; twelve leave room for a longer latency and
    /// still fit the 32 zmm registers. Measured on this host: about 130 GFLOP/s per core, against
    /// about 67 with the 256-bit chains.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Fma512Chains(long iterations)
    {
        var x = Vector512.Create(1.0000001f);
        var y = Vector512.Create(0.9999999f);
        Vector512<float> a0 = Vector512.Create(0f), a1 = Vector512.Create(1f), a2 = Vector512.Create(2f),
            a3 = Vector512.Create(3f), a4 = Vector512.Create(4f), a5 = Vector512.Create(5f), a6 = Vector512.Create(6f),
            a7 = Vector512.Create(7f), a8 = Vector512.Create(8f), a9 = Vector512.Create(9f), a10 = Vector512.Create(10f),
            a11 = Vector512.Create(11f);
        for (long i = 0; i < iterations; i++)
        {
            a0 = Avx512F.FusedMultiplyAdd(a0, x, y); a1 = Avx512F.FusedMultiplyAdd(a1, x, y);
            a2 = Avx512F.FusedMultiplyAdd(a2, x, y); a3 = Avx512F.FusedMultiplyAdd(a3, x, y);
            a4 = Avx512F.FusedMultiplyAdd(a4, x, y); a5 = Avx512F.FusedMultiplyAdd(a5, x, y);
            a6 = Avx512F.FusedMultiplyAdd(a6, x, y); a7 = Avx512F.FusedMultiplyAdd(a7, x, y);
            a8 = Avx512F.FusedMultiplyAdd(a8, x, y); a9 = Avx512F.FusedMultiplyAdd(a9, x, y);
            a10 = Avx512F.FusedMultiplyAdd(a10, x, y); a11 = Avx512F.FusedMultiplyAdd(a11, x, y);
        }
        return Vector512.Sum(a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11);
    }

    /// <summary>FLOPs of <see cref="Fma512Chains"/>: twelve FMAs of sixteen lanes, two FLOPs each, per iteration.</summary>
    public const long Fma512FlopsPerIteration = 12 * 16 * 2;
}
