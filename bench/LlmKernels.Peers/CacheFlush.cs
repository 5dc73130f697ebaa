using System.Diagnostics;

namespace LlmKernels.Peers;

/// <summary>
/// Evicts the caches before a cold sample: reads (never writes) a buffer of twice the last-level
/// cache, so that whatever a kernel's inputs left in L1, L2 or L3 is replaced (and its dirty output
/// lines are written back) outside the timed region. The read runs on the bench's threads or on
/// the calling thread alone, whichever measured faster when the flush was built; every
/// implementation of every cold case is preceded by the same flush.
/// </summary>
public sealed unsafe class CacheFlush : IDisposable
{
    private readonly NativeBuffer _buffer;
    private readonly long _count;
    private readonly ThreadTeam? _team;
    private readonly float[] _sums;

    public CacheFlush(int threads, long bytes)
    {
        _count = Math.Max(bytes / sizeof(float) / MemoryProbes.Granule, 1) * MemoryProbes.Granule;
        _buffer = new NativeBuffer(_count * sizeof(float));
        _sums = new float[threads + 1];
        float* a = _buffer.As<float>();
        for (long k = 0; k < _count; k++)
            a[k] = 1f;

        double single = Best(2, Single);
        if (threads > 1)
        {
            _team = new ThreadTeam(threads);
            double team = Best(2, Team);
            if (team >= single)
            {
                _team.Dispose();
                _team = null;
            }
            else
            {
                single = team;
            }
        }
        Seconds = single;
    }

    /// <summary>Twice the last-level cache, or roofline.c's 256 MiB where that is unknown or smaller.</summary>
    public static long BytesFor(long? lastLevelCacheBytes) => Ceilings.BufferBytesFor(lastLevelCacheBytes);

    public long Bytes => _count * sizeof(float);

    /// <summary>Threads that read the buffer: the bench's thread count or 1.</summary>
    public int Threads => _team?.Count ?? 1;

    /// <summary>The best time of one flush when it was built.</summary>
    public double Seconds { get; }

    /// <summary>Reads the whole buffer once.</summary>
    public void Run()
    {
        if (_team is null)
            Single();
        else
            Team();
    }

    private void Single() => _sums[^1] += MemoryProbes.ReadSum(_buffer.As<float>(), 0, _count);

    private void Team() => _team!.Run(i =>
    {
        var (start, end) = _team.Slice(i, _count, MemoryProbes.Granule);
        _sums[i] += MemoryProbes.ReadSum(_buffer.As<float>(), start, end);
    });

    private static double Best(int repetitions, Action flush)
    {
        double best = double.MaxValue;
        for (int r = 0; r < repetitions; r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            flush();
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        return best;
    }

    public void Dispose()
    {
        _team?.Dispose();
        _buffer.Dispose();
        GC.KeepAlive(_sums);
    }
}
