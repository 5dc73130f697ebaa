using System.Runtime.Intrinsics.X86;

namespace LlmKernels.Peers;

/// <summary>
/// The copy ceiling (as <see cref="Ceilings"/> measures it: the better of a plain and a
/// streaming-store copy of buffers twice the last-level cache, read + write bytes) re-measured on
/// demand, next to each DRAM-class case. This machine's memory bandwidth drifts by up to 1.3x
/// from run to run and within a run (a shared host: 26.6 to 35.6 GB/s on one day): the ceiling
/// measured once at the start put post_layer_norm bf16 [4096, 8192] at 102 % and 65 % of it in two
/// back-to-back runs. A case's fraction is taken against the best of the
/// copies measured just before and just after its LlmKernels samples, so both sides of the ratio
/// see the same machine. The buffers are allocated and touched once.
/// </summary>
public sealed unsafe class CopyProbe : IDisposable
{
    private readonly ThreadTeam team;
    private readonly NativeBuffer source, destination;
    private readonly long count;

    public CopyProbe(int threads, long bufferBytes)
    {
        count = bufferBytes / sizeof(float) / MemoryProbes.Granule * MemoryProbes.Granule;
        team = new ThreadTeam(threads);
        source = new NativeBuffer(count * sizeof(float));
        destination = new NativeBuffer(count * sizeof(float));
        float* a = source.As<float>(), c = destination.As<float>();
        team.Run(i =>
        {
            var (start, end) = team.Slice(i, count, MemoryProbes.Granule);
            for (long k = start; k < end; k++) { a[k] = 1f; c[k] = 0.5f; }
        });
    }

    /// <summary>Copy GB/s now: the better of the plain and the streaming copy, best of <paramref name="repetitions"/> each.</summary>
    public double Measure(int repetitions)
    {
        float* a = source.As<float>(), c = destination.As<float>();
        double copyBytes = 2.0 * count * sizeof(float);
        double best = team.Best(i =>
        {
            var (start, end) = team.Slice(i, count, MemoryProbes.Granule);
            MemoryProbes.CopyPlain(a, c, start, end);
        }, repetitions);
        if (Avx.IsSupported)
            best = Math.Min(best, team.Best(i =>
            {
                var (start, end) = team.Slice(i, count, MemoryProbes.Granule);
                MemoryProbes.CopyStreaming(a, c, start, end);
            }, repetitions));
        return copyBytes / best / 1e9;
    }

    public void Dispose()
    {
        destination.Dispose();
        source.Dispose();
        team.Dispose();
    }
}
