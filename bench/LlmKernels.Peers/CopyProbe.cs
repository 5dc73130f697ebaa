using System.Runtime.Intrinsics.X86;

namespace LlmKernels.Peers;

/// <summary>
/// The team and the two buffers the bandwidth ceilings are measured over, allocated and touched
/// once: <see cref="Ceilings.Measure(CopyProbe, int, bool)"/> takes the run's ceilings from it, and
/// the bench re-measures the copy ceiling with it next to each DRAM-class case. This machine's
/// memory bandwidth drifts from run to run and within a run (a shared host: 26.6 to 35.6 GB/s on one
/// day): the ceiling measured once at the start put post_layer_norm bf16 [4096, 8192] at 102 % and
/// 65 % of it in two back-to-back runs. A case's fraction is taken against the best of the copies
/// measured just before and just after its LlmKernels samples, so both sides of the ratio see the
/// same machine.
/// </summary>
public sealed unsafe class CopyProbe : IDisposable
{
    private readonly NativeBuffer source, destination;
    private readonly float[] sums;

    public CopyProbe(int threads, long bufferBytes)
    {
        Count = bufferBytes / sizeof(float) / MemoryProbes.Granule * MemoryProbes.Granule;
        Team = new ThreadTeam(threads);
        source = new NativeBuffer(Count * sizeof(float));
        destination = new NativeBuffer(Count * sizeof(float));
        sums = new float[threads];
        float* a = source.As<float>(), c = destination.As<float>();
        // First touch from the team, in the slices each member will use: on a NUMA machine the
        // pages land near the thread that streams them, as in roofline.c's parallel init.
        Team.Run(i =>
        {
            var (start, end) = Team.Slice(i, Count, MemoryProbes.Granule);
            for (long k = start; k < end; k++) { a[k] = 1f; c[k] = 0.5f; }
        });
    }

    /// <summary>The threads every probe runs on.</summary>
    public ThreadTeam Team { get; }

    /// <summary>Floats per buffer.</summary>
    public long Count { get; }

    private double CopyBytes => 2.0 * Count * sizeof(float);

    /// <summary>Plain-store copy GB/s (read + write bytes), best of <paramref name="repetitions"/>.</summary>
    public double CopyPlainGBps(int repetitions)
    {
        float* a = source.As<float>(), c = destination.As<float>();
        return CopyBytes / Team.Best(i =>
        {
            var (start, end) = Team.Slice(i, Count, MemoryProbes.Granule);
            MemoryProbes.CopyPlain(a, c, start, end);
        }, repetitions) / 1e9;
    }

    /// <summary>Streaming-store copy GB/s, best of <paramref name="repetitions"/>; null without AVX.</summary>
    public double? CopyStreamingGBps(int repetitions)
    {
        if (!Avx.IsSupported)
            return null;
        float* a = source.As<float>(), c = destination.As<float>();
        return CopyBytes / Team.Best(i =>
        {
            var (start, end) = Team.Slice(i, Count, MemoryProbes.Granule);
            MemoryProbes.CopyStreaming(a, c, start, end);
        }, repetitions) / 1e9;
    }

    /// <summary>Read GB/s (a vectorised sum), best of <paramref name="repetitions"/>.</summary>
    public double ReadGBps(int repetitions)
    {
        float* a = source.As<float>();
        double seconds = Team.Best(i =>
        {
            var (start, end) = Team.Slice(i, Count, MemoryProbes.Granule);
            sums[i] += MemoryProbes.ReadSum(a, start, end);
        }, repetitions);
        return Count * sizeof(float) / seconds / 1e9;
    }

    /// <summary>The copy ceiling now: the better of the plain and the streaming copy, best of <paramref name="repetitions"/> each.</summary>
    public double Measure(int repetitions) => Math.Max(CopyPlainGBps(repetitions), CopyStreamingGBps(repetitions) ?? 0);

    public void Dispose()
    {
        GC.KeepAlive(sums);
        destination.Dispose();
        source.Dispose();
        Team.Dispose();
    }
}
