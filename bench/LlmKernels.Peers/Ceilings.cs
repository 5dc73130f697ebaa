using System.Runtime.Intrinsics.X86;

namespace LlmKernels.Peers;

/// <summary>
/// The machine's ceilings, measured in the benchmark's own process with its thread count: what a
/// memory-bound kernel's GB/s is a fraction of. Bytes are counted as STREAM and roofline.c count
/// them: a copy moves bytes read + bytes written (the read-for-ownership of plain stores is not
/// counted, which is why streaming stores score higher).
/// </summary>
public sealed record Ceilings(
    int Threads,
    long BufferBytes,
    double CopyPlainGBps,
    double? CopyStreamingGBps,
    double ReadGBps,
    double? FmaGflops)
{
    /// <summary>The copy ceiling: the better of the plain and the streaming-store copy.</summary>
    public double CopyGBps => Math.Max(CopyPlainGBps, CopyStreamingGBps ?? 0);

    /// <summary>roofline.c's size: 64 Mi floats per buffer.</summary>
    public const long DefaultBufferBytes = 256L << 20;

    /// <summary>
    /// Measures copy and read bandwidth over two buffers of <paramref name="bufferBytes"/> each
    /// (best of <paramref name="repetitions"/>), and optionally the AVX2 FMA peak.
    /// </summary>
    public static unsafe Ceilings Measure(int threads, long bufferBytes = DefaultBufferBytes, int repetitions = 7, bool fma = true)
    {
        long count = bufferBytes / sizeof(float) / MemoryProbes.Granule * MemoryProbes.Granule;
        using var team = new ThreadTeam(threads);
        using var source = new NativeBuffer(count * sizeof(float));
        using var destination = new NativeBuffer(count * sizeof(float));
        float* a = source.As<float>(), c = destination.As<float>();
        var sums = new float[threads];

        // First touch from the team, in the slices each member will use: on a NUMA machine the
        // pages land near the thread that streams them, as in roofline.c's parallel init.
        team.Run(i =>
        {
            var (start, end) = team.Slice(i, count, MemoryProbes.Granule);
            for (long k = start; k < end; k++) { a[k] = 1f; c[k] = 0.5f; }
        });

        double copyBytes = 2.0 * count * sizeof(float), readBytes = 1.0 * count * sizeof(float);
        double plain = team.Best(i =>
        {
            var (start, end) = team.Slice(i, count, MemoryProbes.Granule);
            MemoryProbes.CopyPlain(a, c, start, end);
        }, repetitions);
        double? streaming = Avx.IsSupported
            ? team.Best(i =>
            {
                var (start, end) = team.Slice(i, count, MemoryProbes.Granule);
                MemoryProbes.CopyStreaming(a, c, start, end);
            }, repetitions)
            : null;
        double read = team.Best(i =>
        {
            var (start, end) = team.Slice(i, count, MemoryProbes.Granule);
            sums[i] += MemoryProbes.ReadSum(a, start, end);
        }, repetitions);

        double? fmaGflops = null;
        if (fma && Fma.IsSupported)
        {
            const long iterations = 20_000_000; // ~40 ms per thread at 80 GFLOP/s, as roofline.c
            double seconds = team.Best(i => sums[i] += MemoryProbes.FmaChains(iterations), Math.Min(repetitions, 3));
            fmaGflops = threads * iterations * MemoryProbes.FmaFlopsPerIteration / seconds / 1e9;
        }

        GC.KeepAlive(sums);
        return new Ceilings(threads, count * sizeof(float), copyBytes / plain / 1e9,
            streaming is double s ? copyBytes / s / 1e9 : null, readBytes / read / 1e9, fmaGflops);
    }

    /// <summary>
    /// Buffer size for a valid ceiling on this machine: roofline.c's 256 MiB, or twice the
    /// last-level cache when that is larger (a 300 MiB L3 is not unusual on server parts, and a
    /// buffer that half fits measures the cache, not memory).
    /// </summary>
    public static long BufferBytesFor(long? lastLevelCacheBytes) =>
        Math.Max(DefaultBufferBytes, 2 * (lastLevelCacheBytes ?? 0));
}
