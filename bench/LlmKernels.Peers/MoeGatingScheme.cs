namespace LlmKernels.Peers;

/// <summary>
/// One MoE routing recipe the <c>moe_gating</c> family measures (docs/moe.md has the contract): how a token's
/// router logits become scores, whether a correction bias chooses, grouped selection, renormalisation and the
/// routed scaling factor. Every peer reads its settings from here; <see cref="Options"/> is LlmKernels' spelling.
/// </summary>
public sealed record MoeGatingScheme(string Kernel, MoeScoring Scoring, bool Bias = false, int Groups = 0, int KeptGroups = 0,
                                     bool Renormalize = false, float RoutedScaling = 0)
{
    /// <summary>p = softmax(logits) over all experts, the k best chosen, their p the weights, not renormalised (vLLM's
    /// <c>topk_softmax</c> default; Qwen-MoE, DeepSeek-V2, OLMoE).</summary>
    public static MoeGatingScheme SoftmaxTopK { get; } = new("moe_softmax_topk", MoeScoring.SoftmaxTopK);

    /// <summary>The k largest logits chosen, the softmax of those k the weights (Mixtral).</summary>
    public static MoeGatingScheme TopKSoftmax { get; } = new("moe_topk_softmax", MoeScoring.TopKSoftmax);

    /// <summary>
    /// DeepSeek-V3: p = sigmoid(logits), chosen by p + e_score_correction_bias among the experts of the 4 best of 8
    /// groups (a group scores the sum of its two best p + bias), the k chosen p renormalised to sum 1, then x 2.5.
    /// </summary>
    public static MoeGatingScheme SigmoidGrouped { get; } =
        new("moe_sigmoid_grouped", MoeScoring.Sigmoid, Bias: true, Groups: 8, KeptGroups: 4, Renormalize: true, RoutedScaling: 2.5f);

    public static IReadOnlyList<MoeGatingScheme> All { get; } = [SoftmaxTopK, TopKSoftmax, SigmoidGrouped];

    /// <summary>Whether only the <see cref="KeptGroups"/> best of <see cref="Groups"/> groups are searched.</summary>
    public bool Grouped => Groups > 1;

    /// <summary>The same settings as LlmKernels' options (the bias is an argument of the call).</summary>
    public MoeGatingOptions Options => new()
    {
        Scoring = Scoring,
        Renormalize = Renormalize,
        NumGroups = Groups,
        TopKGroups = KeptGroups,
        RoutedScalingFactor = RoutedScaling,
    };

    /// <summary>
    /// A group's score from its best and second-best selection scores: their sum with a correction bias, the best
    /// alone without (vLLM <c>grouped_topk</c>'s two cases, DeepSeek-V3's and V2's).
    /// </summary>
    public double GroupScore(double best, double second) => Bias ? best + second : best;
}
