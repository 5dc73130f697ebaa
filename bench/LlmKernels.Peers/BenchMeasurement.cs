namespace LlmKernels.Peers;

/// <summary>
/// Measures one implementation on one case the same way for every family and peer: set up
/// (outside timing), check once against the float64 reference, then time the best of several
/// runs; dispose at once so that its threads stop before the next one is measured.
/// </summary>
public static class BenchMeasurement
{
    /// <summary>
    /// A case whose LlmKernels call moves at least this much is DRAM-class and timed cold (every
    /// implementation alike): the smallest such shape here moves 80 MiB (RoPE bf16 [4096, 40, 128]),
    /// the largest cache-resident one 32 MiB (fused RMSNorm f32 [512, 4096]).
    /// </summary>
    public const long ColdMinBytes = 64L << 20;

    /// <summary>
    /// Whether <paramref name="case"/> is timed cold: decided per case, so every implementation of it is timed the same way.
    /// A compute-bound case (attention prefill: <see cref="IBenchCase.Flops"/>) is timed warm whatever its bytes: its time
    /// is arithmetic, not traffic.
    /// </summary>
    public static bool IsCold(IBenchCase @case) => @case.Flops is null && @case.BytesFor(PeerNames.LlmKernels) >= ColdMinBytes;

    /// <summary>
    /// Measures LlmKernels and every peer on <paramref name="case"/>. With a <paramref name="flush"/>,
    /// a DRAM-class case (<see cref="IsCold"/>) is timed one call per sample from cold caches
    /// (<see cref="BestTime.MeasureCold"/>); every other case, and every case without a flush, warm.
    /// </summary>
    public static BenchRow MeasureRow(IBenchCase @case, IEnumerable<string> peers, CpuContext context, int threads, TimingPlan plan,
                                      CacheFlush? flush = null, ColdPlan coldPlan = default, CopyProbe? copy = null,
                                      int copyRepetitions = 3)
    {
        using var workload = @case.Prepare();
        CacheFlush? caseFlush = IsCold(@case) ? flush : null;
        // A cold case's fraction is against its ceiling (copy, or read for a case that only reads: attention
        // decode), a compute-bound case's against the FMA peak, each measured just before and just after its
        // LlmKernels samples (the better of the two): this host's clocks drift as its bandwidth does (see CopyProbe).
        Func<double>? ceiling = copy is null ? null
            : @case.Ceiling switch
            {
                BenchCeiling.Read => () => copy.ReadGBps(copyRepetitions),
                BenchCeiling.Fma => () => Ceilings.MeasureFmaPeak(copy, copyRepetitions) ?? double.NaN,
                _ => () => copy.Measure(copyRepetitions),
            };
        bool local = caseFlush is not null || @case.Ceiling == BenchCeiling.Fma;
        double? before = local ? ceiling?.Invoke() : null;
        var ours = Measure(PeerNames.LlmKernels, workload, context.ThreadCount, context, plan, caseFlush, coldPlan);
        double? localCeiling = before is double b && ceiling is not null ? Math.Max(b, ceiling()) : null;
        var results = peers.Select(peer => Measure(peer, workload, threads, context, plan, caseFlush, coldPlan)).ToList();
        return new BenchRow(@case, ours, results, caseFlush is not null, localCeiling);
    }

    public static PeerResult Measure(string peer, IBenchWorkload workload, int threads, CpuContext context, TimingPlan plan,
                                     CacheFlush? flush = null, ColdPlan coldPlan = default)
    {
        var @case = workload.Case;
        int peerThreads = PeerNames.IsSingleThreaded(peer) ? 1 : threads;
        double fraction = 1;
        PeerResult Result(PeerStatus status, double? seconds, double? error, string detail) =>
            new(peer, @case.DtypeFor(peer), peerThreads, @case.BytesFor(peer), status, seconds, error, detail, @case.Flops, fraction);

        IBenchPeer implementation;
        try
        {
            implementation = workload.Create(peer, threads, context);
        }
        catch (PeerUnavailableException e)
        {
            return Result(PeerStatus.Unavailable, null, null, e.Message);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // Setup itself refused (LlmKernels rejecting the RoPE cache's parameters, say): a failed row, not a crash.
            return Result(PeerStatus.Failed, null, null, $"setup: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
        }

        using (implementation)
        {
            fraction = implementation.WorkFraction;
            try
            {
                var check = workload.Check(implementation);
                if (!check.Ok)
                    return Result(PeerStatus.Mismatch, null, check.MaxError, check.Detail);
                double seconds = flush is null
                    ? BestTime.Measure(implementation, plan)
                    : BestTime.MeasureCold(implementation, coldPlan, flush);
                // A peer timed on a slice of the call (the naive attention loops): its time scaled to the whole call.
                // A passing check may leave a note (MoE gating: tokens that differ from the reference only by ties).
                return Result(PeerStatus.Ok, seconds / fraction, check.MaxError, check.Detail);
            }
            catch (EntryPointNotFoundException e)
            {
                // A native library built before this family's kernels landed: say so, do not crash.
                return Result(PeerStatus.Unavailable, null, null, PeerNames.MissingEntryPoint(e));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                return Result(PeerStatus.Failed, null, null, $"{e.GetType().Name}: {e.Message.Split('\n')[0]}");
            }
        }
    }
}
