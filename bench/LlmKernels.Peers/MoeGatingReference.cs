namespace LlmKernels.Peers;

/// <summary>
/// The float64 routing of one token by the contract (docs/moe.md), and the weights of any set of experts, for
/// <see cref="MoeGatingCheck"/>. Scores: softmax p (softmax-then-top-k), the logit (top-k-then-softmax) or
/// sigmoid p, in double. Selection score: the logit without a correction bias (softmax and sigmoid keep its order,
/// and the kernel ranks by it), p + bias with one. A group scores the sum of its two best selection scores with a
/// bias, its best one without; the best groups are kept and the k experts chosen among theirs. Every ranking is
/// by descending score, equal scores to the lower index; the output is in descending weight order, ties to the
/// lower id. One instance per check: its arrays are reused token after token.
/// </summary>
public sealed unsafe class MoeGatingReference
{
    private readonly MoeGatingCase _case;
    private readonly float* _bias;
    private readonly double[] _value;
    private readonly bool[] _taken;

    public MoeGatingReference(MoeGatingInputs inputs)
    {
        _case = inputs.Case;
        _bias = inputs.Bias is { } bias ? bias.As<float>() : null;
        int experts = (int)_case.Experts, groups = Math.Max(1, _case.Scheme.Groups);
        _value = new double[experts];
        _taken = new bool[experts];
        Score = new double[experts];
        GroupScore = new double[groups];
        Kept = new bool[groups];
        Selected = new int[_case.TopK];
    }

    /// <summary>Per expert, what ranks it (the logit, or p + bias).</summary>
    public double[] Score { get; }

    /// <summary>Per group, its score (one group of every expert without grouped selection).</summary>
    public double[] GroupScore { get; }

    /// <summary>Per group, whether the reference keeps it.</summary>
    public bool[] Kept { get; }

    /// <summary>The k experts chosen, in the contract's output order.</summary>
    public int[] Selected { get; }

    /// <summary>Experts per group (every expert when the scheme has no groups).</summary>
    public int GroupSize => (int)_case.Experts / GroupScore.Length;

    /// <summary>The contract's total order: higher score first, equal scores to the lower index.</summary>
    public static bool Better(double a, int indexA, double b, int indexB) => a > b || (a == b && indexA < indexB);

    /// <summary>Routes token <paramref name="token"/> of <paramref name="logits"/> ([tokens, experts] f32).</summary>
    public void Compute(float* logits, long token)
    {
        var scheme = _case.Scheme;
        int experts = (int)_case.Experts;
        float* row = logits + token * experts;
        double max = double.NegativeInfinity, sum = 0;
        for (int e = 0; e < experts; e++)
            max = Math.Max(max, row[e]);
        for (int e = 0; e < experts; e++)
        {
            double x = row[e];
            _value[e] = scheme.Scoring switch
            {
                MoeScoring.SoftmaxTopK => Math.Exp(x - max),
                MoeScoring.Sigmoid => 1 / (1 + Math.Exp(-x)),
                _ => x,
            };
            sum += _value[e];
        }
        for (int e = 0; e < experts; e++)
        {
            if (scheme.Scoring == MoeScoring.SoftmaxTopK)
                _value[e] /= sum;
            Score[e] = _bias == null ? row[e] : (scheme.Scoring == MoeScoring.TopKSoftmax ? row[e] : _value[e]) + _bias[e];
        }

        int groups = GroupScore.Length, size = GroupSize;
        Array.Fill(Kept, !scheme.Grouped);
        if (scheme.Grouped)
        {
            for (int g = 0; g < groups; g++)
            {
                int best = TopOf(g * size, size, -1), second = size > 1 ? TopOf(g * size, size, best) : best;
                GroupScore[g] = size > 1 ? scheme.GroupScore(Score[best], Score[second]) : Score[best];
            }
            for (int i = 0; i < scheme.KeptGroups; i++)
            {
                int pick = -1;
                for (int g = 0; g < groups; g++)
                    if (!Kept[g] && (pick < 0 || Better(GroupScore[g], g, GroupScore[pick], pick)))
                        pick = g;
                Kept[pick] = true;
            }
        }

        // k passes of argmax over the kept groups' experts, each pick taken out of the running.
        Array.Clear(_taken);
        for (int j = 0; j < _case.TopK; j++)
        {
            int pick = -1;
            for (int e = 0; e < experts; e++)
                if (Kept[e / size] && !_taken[e] && (pick < 0 || Better(Score[e], e, Score[pick], pick)))
                    pick = e;
            Selected[j] = pick;
            _taken[pick] = true;
        }
        Span<double> weights = stackalloc double[Selected.Length];
        WeightsOf(Selected, weights);
        SortByWeight(Selected, weights);
    }

    /// <summary>The best expert of [first, first + count) other than <paramref name="except"/>.</summary>
    private int TopOf(int first, int count, int except)
    {
        int best = -1;
        for (int e = first; e < first + count; e++)
            if (e != except && (best < 0 || Better(Score[e], e, Score[best], best)))
                best = e;
        return best;
    }

    /// <summary>
    /// The weights the scheme gives the experts <paramref name="ids"/> when they are the ones chosen (the last
    /// <see cref="Compute"/>'s token): their p, or the softmax of their logits; renormalised and scaled as the
    /// scheme says.
    /// </summary>
    public void WeightsOf(ReadOnlySpan<int> ids, Span<double> weights)
    {
        var scheme = _case.Scheme;
        double max = double.NegativeInfinity, sum = 0;
        foreach (int e in ids)
            max = Math.Max(max, _value[e]);
        for (int j = 0; j < ids.Length; j++)
        {
            weights[j] = scheme.Scoring == MoeScoring.TopKSoftmax ? Math.Exp(_value[ids[j]] - max) : _value[ids[j]];
            sum += weights[j];
        }
        bool normalise = scheme.Scoring == MoeScoring.TopKSoftmax || scheme.Renormalize;
        double factor = (normalise ? 1 / sum : 1) * (scheme.RoutedScaling != 0 ? scheme.RoutedScaling : 1);
        for (int j = 0; j < ids.Length; j++)
            weights[j] *= factor;
    }

    /// <summary>Puts <paramref name="ids"/> in descending weight order, equal weights to the lower id (insertion sort: k is small).</summary>
    public static void SortByWeight(Span<int> ids, Span<double> weights)
    {
        for (int i = 1; i < ids.Length; i++)
            for (int j = i; j > 0 && Better(weights[j], ids[j], weights[j - 1], ids[j - 1]); j--)
            {
                (ids[j], ids[j - 1]) = (ids[j - 1], ids[j]);
                (weights[j], weights[j - 1]) = (weights[j - 1], weights[j]);
            }
    }
}
