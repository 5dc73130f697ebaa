namespace LlmKernels.Peers;

/// <summary>
/// Measures one implementation on one case the same way for every peer: set up (outside timing),
/// check once against the float64 reference, then time the best of several runs; dispose at once
/// so that its threads stop before the next one is measured.
/// </summary>
public static class RmsNormMeasurement
{
    public static RmsNormRow MeasureRow(RmsNormCase @case, CpuContext context, int threads, TimingPlan plan, IEnumerable<string> peers)
    {
        using var inputs = RmsNormInputs.Create(@case);
        var ours = Measure(RmsNormPeers.LlmKernels, inputs, context.ThreadCount, context, plan);
        var results = peers.Select(peer => Measure(peer, inputs, threads, context, plan)).ToList();
        return new RmsNormRow(@case, ours, results);
    }

    public static PeerResult Measure(string peer, RmsNormInputs inputs, int threads, CpuContext context, TimingPlan plan)
    {
        var @case = inputs.Case;
        var dtype = RmsNormPeers.DtypeFor(peer, @case.Dtype);
        int peerThreads = RmsNormPeers.IsSingleThreaded(peer) ? 1 : threads;
        long bytes = @case.BytesAt(dtype);
        PeerResult Result(PeerStatus status, double? seconds, double? error, string detail) =>
            new(peer, dtype, peerThreads, bytes, status, seconds, error, detail);

        IRmsNormPeer implementation;
        try
        {
            implementation = RmsNormPeers.Create(peer, inputs, @case.Dtype, threads, context);
        }
        catch (PeerUnavailableException e)
        {
            return Result(PeerStatus.Unavailable, null, null, e.Message);
        }

        using (implementation)
        {
            try
            {
                var check = RmsNormCheck.Run(implementation, inputs);
                if (!check.Ok)
                    return Result(PeerStatus.Mismatch, null, check.MaxError, check.Detail);
                double seconds = BestTime.Measure(implementation, plan);
                return Result(PeerStatus.Ok, seconds, check.MaxError, "");
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                return Result(PeerStatus.Failed, null, null, $"{e.GetType().Name}: {e.Message.Split('\n')[0]}");
            }
        }
    }
}
