namespace LlmKernels.Peers;

/// <summary>
/// Checks a MoE permute or combine peer against the reference plan (<see cref="MoeRoutingPlan.Reference"/>), every
/// row:
/// <list type="bullet">
/// <item>permute: each output row is the input row of its slot's token, <c>sorted_slots[r] / k</c>, bit for bit in
/// the peer's element type (the inputs are exact in bf16, so a bf16 copy is exact too);</item>
/// <item>combine: each output element is the float64 <c>sum_j w[t, j] * e[slot_rows[t * k + j]]</c>, within the
/// element type's tolerance (<see cref="ErrorTracker.Tolerance"/>) relative to <c>sum_j |w x|</c>: the terms'
/// magnitude, which the f32 accumulation's and the single rounding's error scale with when the terms cancel.</item>
/// </list>
/// A peer that used another plan than the contract's (LlmKernels builds its own) puts other rows in other places and
/// fails here.
/// </summary>
public static unsafe class MoePermuteCheck
{
    public static CheckResult Run(IMoePermutePeer peer, MoePermuteInputs inputs) =>
        CheckResult.RunOnce(peer, p => inputs.Case.Combine ? Combine(p, inputs) : Permute(p, inputs));

    private static CheckResult Permute(IMoePermutePeer peer, MoePermuteInputs inputs)
    {
        var c = inputs.Case;
        long hidden = c.Hidden;
        float* x = inputs.Source.As<float>();
        int[] sortedSlots = inputs.Plan.SortedSlots;
        for (long r = 0; r < c.Rows; r++)
        {
            long token = sortedSlots[r] / c.TopK;
            for (long i = 0; i < hidden; i++)
            {
                float expected = Elements.Round(x[token * hidden + i], peer.Dtype);
                float got = Elements.Load(peer.Out, r * hidden + i, peer.Dtype);
                if (BitConverter.SingleToInt32Bits(got) != BitConverter.SingleToInt32Bits(expected))
                    return new CheckResult(false, double.PositiveInfinity, 0,
                        $"out[{r}, {i}] = {got:G9}, expected {expected:G9}: row {r} must be token {token}'s (slot {sortedSlots[r]}), bit for bit");
            }
        }
        return new CheckResult(true, 0, 0, "");
    }

    private static CheckResult Combine(IMoePermutePeer peer, MoePermuteInputs inputs)
    {
        var c = inputs.Case;
        long hidden = c.Hidden;
        int k = c.TopK;
        float* e = inputs.Source.As<float>(), w = inputs.Weights.As<float>();
        int[] slotRows = inputs.Plan.SlotRows;
        var errors = new ErrorTracker(ErrorTracker.Tolerance(peer.Dtype));
        for (long t = 0; t < c.Tokens; t++)
            for (long i = 0; i < hidden; i++)
            {
                double sum = 0, magnitude = 0;
                for (int j = 0; j < k; j++)
                {
                    long slot = t * k + j;
                    double term = (double)w[slot] * e[slotRows[slot] * hidden + i];
                    sum += term;
                    magnitude += Math.Abs(term);
                }
                errors.Track(Elements.Load(peer.Out, t * hidden + i, peer.Dtype), sum, magnitude, $"out[{t}, {i}]");
            }
        return errors.Result();
    }
}
