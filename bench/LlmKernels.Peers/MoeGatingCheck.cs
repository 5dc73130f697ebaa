namespace LlmKernels.Peers;

/// <summary>
/// Checks a MoE gating peer against the float64 routing (<see cref="MoeGatingReference"/>), every token:
/// <list type="bullet">
/// <item>the ids are k distinct experts in range;</item>
/// <item>they are a top k of the selection scores: no expert left out ranks above one chosen (and, grouped, no
/// group dropped above one kept), except where the two scores are within <see cref="ScoreTieTolerance"/> (f32
/// rounding of p + bias can order them either way) or, for a peer without the contract's tie rule (ggml's
/// argsort), exactly equal;</item>
/// <item>each weight is the float64 weight of its expert given the experts chosen, within
/// <see cref="WeightTolerance"/> relative to max(|w|, 1);</item>
/// <item>for a peer that keeps the contract's order (<see cref="IMoeGatingPeer.ContractOrder"/>), the outputs are in
/// descending weight order, exact ties to the lower id, both for choosing and for the output; a peer without it
/// (ggml) is compared as a set of (id, weight) pairs.</item>
/// </list>
/// Tokens whose experts or order differ from the reference's only by such ties pass, and are counted in the
/// detail of an otherwise clean result.
/// </summary>
public static unsafe class MoeGatingCheck
{
    /// <summary>The weights are f32 results of a few f32 operations: 1e-5 is a hundred units in the last place.</summary>
    public const double WeightTolerance = 1e-5;

    /// <summary>
    /// Two selection scores this close (relative to max(|s|, 1)) may rank either way in f32: a sigmoid p rounded to
    /// f32 plus the bias, a group's sum of two. Without a bias the logits rank exactly and only exact ties remain.
    /// </summary>
    public const double ScoreTieTolerance = 2e-6;

    public static CheckResult Run(IMoeGatingPeer peer, MoeGatingInputs inputs) => CheckResult.RunOnce(peer, p => Compare(p, inputs));

    public static CheckResult Compare(IMoeGatingPeer peer, MoeGatingInputs inputs)
    {
        var c = inputs.Case;
        var scheme = c.Scheme;
        int k = c.TopK, experts = (int)c.Experts;
        bool strict = peer.ContractOrder;
        var reference = new MoeGatingReference(inputs);
        var errors = new ErrorTracker(WeightTolerance);
        var ids = new int[k];
        var expected = new double[k];
        var chosen = new bool[experts];
        var kept = new bool[reference.GroupScore.Length];
        long differing = 0;
        for (long t = 0; t < c.Tokens; t++)
        {
            reference.Compute(inputs.Logits.As<float>(), t);
            Array.Clear(chosen);
            for (int j = 0; j < k; j++)
            {
                int id = peer.Ids[t * peer.IdsStride + j];
                if (id < 0 || id >= experts || chosen[id])
                    return Fail($"token {t}: id {id} at position {j} is {(id < 0 || id >= experts ? "out of range" : "repeated")} ({Ids(peer, t, k)})");
                chosen[id] = true;
                ids[j] = id;
            }
            // A peer in the contract's order must match it position by position; ggml's (id, weight) pairs as a set.
            bool same = strict ? ids.AsSpan().SequenceEqual(reference.Selected) : reference.Selected.All(id => chosen[id]);

            // The groups searched: the reference's, or, where the peer chose from another group, the groups it
            // used topped up with the reference's best, which must then tie the group they replace.
            reference.Kept.CopyTo(kept, 0);
            int size = reference.GroupSize;
            if (ids.Any(id => !kept[id / size]))
            {
                Array.Clear(kept);
                foreach (int id in ids)
                    kept[id / size] = true;
                int count = kept.Count(x => x);
                if (count > scheme.KeptGroups)
                    return Fail($"token {t}: experts from {count} groups, more than the {scheme.KeptGroups} kept ({Ids(peer, t, k)})");
                foreach (int g in Enumerable.Range(0, kept.Length).Where(g => reference.Kept[g]).OrderBy(g => -reference.GroupScore[g]))
                    if (count < scheme.KeptGroups && !kept[g])
                    {
                        kept[g] = true;
                        count++;
                    }
                if (!TopOf(reference.GroupScore, kept, g => true, strict, out string why))
                    return Fail($"token {t}: groups {why} ({Ids(peer, t, k)})");
            }
            if (!TopOf(reference.Score, chosen, e => kept[e / size], strict, out string reason))
                return Fail($"token {t}: experts {reason} ({Ids(peer, t, k)}; reference {string.Join(", ", reference.Selected)})");

            reference.WeightsOf(ids, expected);
            for (int j = 0; j < k; j++)
                errors.Track(peer.Weights[t * k + j], expected[j], $"weight[{t}, {j}] (expert {ids[j]})");
            if (strict)
                for (int j = 0; j + 1 < k; j++)
                    if (!Ranks(expected[j], ids[j], expected[j + 1], ids[j + 1], strict))
                        return Fail($"token {t}: not in descending weight order, ties to the lower id, at position {j} ({Ids(peer, t, k)})");
            if (!same)
                differing++;
        }
        var result = errors.Result();
        if (result.Ok && differing > 0)
            result = result with
            {
                Detail = strict
                    ? $"{differing} of {c.Tokens} tokens differ from the reference's ids or order only where scores are within {ScoreTieTolerance:G2} (f32 rounding)"
                    : $"{differing} of {c.Tokens} tokens choose other experts than the reference only where scores tie exactly (its sort's order) " +
                      $"or within {ScoreTieTolerance:G2}; (id, weight) pairs compared as sets",
            };
        return result;
    }

    /// <summary>
    /// Whether the items marked <paramref name="chosen"/> rank at or above every other item <paramref name="eligible"/>
    /// by <paramref name="score"/>: the worst chosen against the best left out, allowing ties as the class says.
    /// </summary>
    private static bool TopOf(double[] score, bool[] chosen, Func<int, bool> eligible, bool strict, out string reason)
    {
        int worst = -1, best = -1;
        for (int i = 0; i < score.Length; i++)
        {
            if (!eligible(i))
                continue;
            if (chosen[i] && (worst < 0 || MoeGatingReference.Better(score[worst], worst, score[i], i)))
                worst = i;
            if (!chosen[i] && (best < 0 || MoeGatingReference.Better(score[i], i, score[best], best)))
                best = i;
        }
        reason = best < 0 || worst < 0 || Ranks(score[worst], worst, score[best], best, strict) ? ""
            : $"{worst} (score {score[worst]:G9}) chosen over {best} (score {score[best]:G9})";
        return reason.Length == 0;
    }

    /// <summary>Whether (a, index a) may come before (b, index b): it ranks higher, or ties within rounding, or ties exactly for a peer without the tie rule.</summary>
    private static bool Ranks(double a, int indexA, double b, int indexB, bool strict) =>
        MoeGatingReference.Better(a, indexA, b, indexB)
        || (a == b ? !strict : b - a <= ScoreTieTolerance * Math.Max(1, Math.Abs(b)));

    private static CheckResult Fail(string detail) =>
        new(false, double.PositiveInfinity, WeightTolerance, detail);

    private static string Ids(IMoeGatingPeer peer, long token, int k) =>
        "ids " + string.Join(", ", Enumerable.Range(0, k).Select(j => peer.Ids[token * peer.IdsStride + j]));
}
