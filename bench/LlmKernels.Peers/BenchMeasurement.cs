namespace LlmKernels.Peers;

/// <summary>
/// Measures one implementation on one case the same way for every family and peer: set up
/// (outside timing), check once against the float64 reference, then time the best of several
/// runs; dispose at once so that its threads stop before the next one is measured.
/// </summary>
public static class BenchMeasurement
{
    public static BenchRow MeasureRow(IBenchCase @case, IEnumerable<string> peers, CpuContext context, int threads, TimingPlan plan)
    {
        using var workload = @case.Prepare();
        var ours = Measure(PeerNames.LlmKernels, workload, context.ThreadCount, context, plan);
        var results = peers.Select(peer => Measure(peer, workload, threads, context, plan)).ToList();
        return new BenchRow(@case, ours, results);
    }

    public static PeerResult Measure(string peer, IBenchWorkload workload, int threads, CpuContext context, TimingPlan plan)
    {
        var @case = workload.Case;
        int peerThreads = PeerNames.IsSingleThreaded(peer) ? 1 : threads;
        PeerResult Result(PeerStatus status, double? seconds, double? error, string detail) =>
            new(peer, @case.DtypeFor(peer), peerThreads, @case.BytesFor(peer), status, seconds, error, detail);

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
            try
            {
                var check = workload.Check(implementation);
                if (!check.Ok)
                    return Result(PeerStatus.Mismatch, null, check.MaxError, check.Detail);
                double seconds = BestTime.Measure(implementation, plan);
                return Result(PeerStatus.Ok, seconds, check.MaxError, "");
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
