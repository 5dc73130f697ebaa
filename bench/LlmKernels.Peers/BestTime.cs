using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// How long to measure: at least <see cref="MinWarmUp"/> warm-up calls, then samples of at least
/// <see cref="SampleSeconds"/>, until the budget is spent (and at least <see cref="MinSamples"/>).
/// </summary>
public readonly record struct TimingPlan(double SampleSeconds, double BudgetSeconds, int MinSamples, int MaxSamples, int MinWarmUp)
{
    public static TimingPlan Full { get; } = new(0.002, 0.5, 5, 200, 3);

    /// <summary>
    /// For `llmk bench --quick`: the whole run in about a minute on a 2-core machine. A call slower
    /// than the budget (ONNX Runtime's bf16 LayerNorm on [4096, 8192]) then runs twice after the
    /// check's run, which already paid for page faults and compilation, and the better time counts.
    /// </summary>
    public static TimingPlan Quick { get; } = new(0.001, 0.12, 1, 60, 1);
}

/// <summary>
/// How long to measure a cold (DRAM-class) case: <see cref="WarmUp"/> untimed warm-up calls, then
/// samples of ONE call each, every one preceded by an untimed <see cref="CacheFlush"/>, until the budget (flushes
/// included) is spent and at least <see cref="MinSamples"/> were taken.
/// </summary>
public readonly record struct ColdPlan(double BudgetSeconds, int MinSamples, int MaxSamples, int WarmUp)
{
    public static ColdPlan Full { get; } = new(1.0, 5, 20, 1);

    /// <summary>For `llmk bench --quick`: two cold samples, no warm-up (the check's run already paid for page faults and woke the pools).</summary>
    public static ColdPlan Quick { get; } = new(0, 2, 2, 0);
}

/// <summary>
/// The best (minimum) time per operation over several samples, after warm-up. The minimum is the
/// estimate least disturbed by the noise a shared machine adds; short operations are repeated
/// inside a sample so that the clock's resolution and the loop are negligible.
/// </summary>
public static class BestTime
{
    /// <summary>Warm-up time of short calls: long enough for tiered compilation to promote what they run.</summary>
    public const double WarmUpSeconds = 0.2;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // called once per measurement: no tier-0 loop
    public static double Measure<T>(T operation, TimingPlan plan) where T : ITimedOperation
    {
        // Warm-up: the first calls pay for page faults, JIT tiering and waking thread pools. Tiered
        // compilation promotes a method only after 30 calls that come 100 ms after the last tier-0
        // compile, so short calls run for at least WarmUpSeconds: TensorPrimitives' generic
        // kernels, run once per call on one row, are otherwise timed at tier 0 (10-100x slower).
        long start = Stopwatch.GetTimestamp();
        double single = double.MaxValue;
        double warmUp = Math.Max(plan.BudgetSeconds * 0.1, WarmUpSeconds);
        for (int i = 0; i < plan.MinWarmUp || Seconds(start) < warmUp; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            operation.Run();
            single = Math.Min(single, Seconds(t0));
            if (i >= plan.MinWarmUp - 1 && Seconds(start) > Math.Max(plan.BudgetSeconds, warmUp))
                break;
        }

        int inner = (int)Math.Clamp(Math.Ceiling(plan.SampleSeconds / Math.Max(single, 1e-9)), 1, 1_000_000);
        // A call longer than a sample is a sample of its own: the warm-up calls count.
        double best = inner == 1 ? single : double.MaxValue;
        long measured = Stopwatch.GetTimestamp();
        for (int sample = 0; sample < plan.MaxSamples; sample++)
        {
            if (sample >= plan.MinSamples && Seconds(measured) > plan.BudgetSeconds)
                break;
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < inner; i++)
                operation.Run();
            best = Math.Min(best, Seconds(t0) / inner);
        }
        return best;
    }

    /// <summary>
    /// The best time of one call from cold caches: each sample evicts the caches with
    /// <paramref name="flush"/> (untimed), then times a single call. In-place kernels keep updating
    /// their data between samples, which changes the values, not the traffic.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static double MeasureCold<T>(T operation, ColdPlan plan, CacheFlush flush) where T : ITimedOperation
    {
        for (int i = 0; i < plan.WarmUp; i++)
            operation.Run(); // wakes thread pools, faults in anything the check's run did not touch
        double best = double.MaxValue;
        long start = Stopwatch.GetTimestamp();
        for (int sample = 0; sample < plan.MaxSamples; sample++)
        {
            if (sample >= plan.MinSamples && Seconds(start) > plan.BudgetSeconds)
                break;
            flush.Run();
            long t0 = Stopwatch.GetTimestamp();
            operation.Run();
            best = Math.Min(best, Seconds(t0));
        }
        return best;
    }

    private static double Seconds(long since) => Stopwatch.GetElapsedTime(since).TotalSeconds;
}
