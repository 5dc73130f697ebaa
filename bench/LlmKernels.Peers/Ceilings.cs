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
    double? FmaGflops,
    double? Fma512Gflops = null)
{
    /// <summary>The machine's FMA peak: the better of the AVX2 and the AVX-512 probe (null without FMA).</summary>
    public double? FmaPeakGflops => FmaGflops is double avx2 ? Math.Max(avx2, Fma512Gflops ?? 0) : Fma512Gflops;

    /// <summary>The copy ceiling: the better of the plain and the streaming-store copy.</summary>
    public double CopyGBps => Math.Max(CopyPlainGBps, CopyStreamingGBps ?? 0);

    /// <summary>roofline.c's size: 64 Mi floats per buffer.</summary>
    public const long DefaultBufferBytes = 256L << 20;

    /// <summary>
    /// Measures copy and read bandwidth over two buffers of <paramref name="bufferBytes"/> each
    /// (best of <paramref name="repetitions"/>), and optionally the FMA peaks (AVX2, and AVX-512 where the CPU has it).
    /// </summary>
    public static Ceilings Measure(int threads, long bufferBytes = DefaultBufferBytes, int repetitions = 7, bool fma = true)
    {
        using var probe = new CopyProbe(threads, bufferBytes);
        return Measure(probe, repetitions, fma);
    }

    /// <summary>As <see cref="Measure(int, long, int, bool)"/>, over the buffers and threads of <paramref name="probe"/>.</summary>
    public static Ceilings Measure(CopyProbe probe, int repetitions = 7, bool fma = true)
    {
        double plain = probe.CopyPlainGBps(repetitions);
        double? streaming = probe.CopyStreamingGBps(repetitions);
        double read = probe.ReadGBps(repetitions);

        double? fmaGflops = fma ? ProbeFma256(probe, repetitions) : null;
        double? fma512Gflops = fma ? ProbeFma512(probe, repetitions) : null;
        return new Ceilings(probe.Team.Count, probe.Count * sizeof(float), plain, streaming, read, fmaGflops, fma512Gflops);
    }

    /// <summary>The FMA peak now (the better of the AVX2 and AVX-512 probes), with the probe's threads; null without FMA.</summary>
    public static double? MeasureFmaPeak(CopyProbe probe, int repetitions = 3) =>
        ProbeFma256(probe, repetitions) is double avx2 ? Math.Max(avx2, ProbeFma512(probe, repetitions) ?? 0) : ProbeFma512(probe, repetitions);

    private static double? ProbeFma256(CopyProbe probe, int repetitions)
    {
        if (!Fma.IsSupported) return null;
        const long iterations = 20_000_000; // ~40 ms per thread at 80 GFLOP/s, as roofline.c
        var sums = new float[probe.Team.Count];
        double seconds = probe.Team.Best(i => sums[i] += MemoryProbes.FmaChains(iterations), Math.Min(repetitions, 3));
        GC.KeepAlive(sums);
        return probe.Team.Count * iterations * MemoryProbes.FmaFlopsPerIteration / seconds / 1e9;
    }

    private static double? ProbeFma512(CopyProbe probe, int repetitions)
    {
        if (!Avx512F.IsSupported) return null;
        const long iterations = 10_000_000; // ~40 ms per thread at 130 GFLOP/s
        var sums = new float[probe.Team.Count];
        double seconds = probe.Team.Best(i => sums[i] += MemoryProbes.Fma512Chains(iterations), Math.Min(repetitions, 3));
        GC.KeepAlive(sums);
        return probe.Team.Count * iterations * MemoryProbes.Fma512FlopsPerIteration / seconds / 1e9;
    }

    /// <summary>
    /// Buffer size for a valid ceiling on this machine: roofline.c's 256 MiB, or twice the
    /// last-level cache when that is larger (a 300 MiB L3 is not unusual on server parts, and a
    /// buffer that half fits measures the cache, not memory).
    /// </summary>
    public static long BufferBytesFor(long? lastLevelCacheBytes) =>
        Math.Max(DefaultBufferBytes, 2 * (lastLevelCacheBytes ?? 0));
}
