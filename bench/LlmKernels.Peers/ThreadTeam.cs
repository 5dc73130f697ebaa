using System.Diagnostics;

namespace LlmKernels.Peers;

/// <summary>
/// Dedicated threads, started once, that run one piece of work each between two barriers: the
/// shape of an OpenMP parallel region (roofline.c) and of LlmKernels' own pool, so the ceilings
/// are measured with the same number of threads doing the same kind of split. The .NET thread
/// pool is not used: it may run fewer threads than asked, or inject more.
/// </summary>
public sealed class ThreadTeam : IDisposable
{
    private readonly Thread[] _threads;
    private readonly Barrier _start;
    private readonly Barrier _end;
    private Action<int>? _work;
    private volatile bool _stopping;

    public ThreadTeam(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        Count = count;
        _start = new Barrier(count + 1);
        _end = new Barrier(count + 1);
        _threads = new Thread[count];
        for (int i = 0; i < count; i++)
        {
            int index = i;
            _threads[i] = new Thread(() => Loop(index)) { IsBackground = true, Name = $"llmk-bench-{i}" };
            _threads[i].Start();
        }
    }

    public int Count { get; }

    /// <summary>Runs <paramref name="work"/>(index) on every member once; returns the seconds from release to the last finish.</summary>
    public double Run(Action<int> work)
    {
        _work = work;
        long t0 = Stopwatch.GetTimestamp();
        _start.SignalAndWait();
        _end.SignalAndWait();
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>The best (minimum) of <paramref name="repetitions"/> runs.</summary>
    public double Best(Action<int> work, int repetitions)
    {
        double best = double.MaxValue;
        for (int r = 0; r < repetitions; r++)
            best = Math.Min(best, Run(work));
        return best;
    }

    /// <summary>The [start, end) range of <paramref name="count"/> items member <paramref name="index"/> owns, in multiples of <paramref name="granule"/>.</summary>
    public (long Start, long End) Slice(int index, long count, long granule)
    {
        long granules = count / granule;
        long start = granules * index / Count * granule;
        long end = index == Count - 1 ? count : granules * (index + 1) / Count * granule;
        return (start, end);
    }

    private void Loop(int index)
    {
        while (true)
        {
            _start.SignalAndWait();
            if (_stopping)
                return;
            _work!(index);
            _end.SignalAndWait();
        }
    }

    public void Dispose()
    {
        if (_stopping)
            return;
        _stopping = true;
        _start.SignalAndWait();
        foreach (var thread in _threads)
            thread.Join();
        _start.Dispose();
        _end.Dispose();
    }
}
