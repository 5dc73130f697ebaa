namespace LlmKernels.Peers;

/// <summary>
/// Checks an attention peer against the float64 reference (<see cref="AttentionReference"/>): every
/// element of every head of the checked queries that the peer computes.
/// </summary>
public static unsafe class AttentionCheck
{
    public static CheckResult Run(IAttentionPeer peer, AttentionInputs inputs)
    {
        peer.Reset();
        peer.Run();
        var reference = inputs.Reference;
        var errors = new ErrorTracker(peer.Tolerance);
        const long row = AttentionCase.QHeads * AttentionCase.HeadDim;
        bool any = false;
        for (int index = 0; index < reference.Queries.Length; index++)
        {
            long token = reference.Queries[index];
            for (long head = 0; head < AttentionCase.QHeads; head++)
            {
                if (!peer.Computes(token, head))
                    continue;
                any = true;
                for (long d = 0; d < AttentionCase.HeadDim; d++)
                    errors.Track(Elements.Load(peer.Output, token * row + head * AttentionCase.HeadDim + d, peer.OutputDtype),
                                 reference.At(index, head, d), $"out[{token}, {head}, {d}]");
            }
        }
        if (!any)
            return new CheckResult(false, double.PositiveInfinity, peer.Tolerance, "the peer computes none of the checked queries");
        return errors.Result();
    }
}
