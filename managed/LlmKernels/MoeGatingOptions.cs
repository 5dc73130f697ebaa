namespace LlmKernels;

/// <summary>
/// The scalar settings of <see cref="Moe"/> gating: the scoring scheme, grouped selection, renormalisation and the routed scaling
/// factor. The defaults (<c>new MoeGatingOptions()</c>, or null) are vLLM's <c>topk_softmax</c> without renormalisation:
/// <see cref="MoeScoring.SoftmaxTopK"/>, no groups, no scaling. The correction bias, an array, is an argument of the call.
/// Formulas: docs/moe.md.
/// </summary>
/// <example>DeepSeek-V3 (256 experts, 8 per token):
/// <c>new MoeGatingOptions { Scoring = MoeScoring.Sigmoid, Renormalize = true, NumGroups = 8, TopKGroups = 4, RoutedScalingFactor = 2.5f }</c>
/// with <c>e_score_correction_bias</c> as the correction bias.</example>
public sealed record MoeGatingOptions
{
    /// <summary>How logits become scores and weights; <see cref="MoeScoring.SoftmaxTopK"/> by default.</summary>
    public MoeScoring Scoring { get; init; }

    /// <summary>Divides each token's <c>topK</c> weights by their sum (HF's <c>norm_topk_prob</c>, vLLM's <c>renormalize</c>),
    /// before the <see cref="RoutedScalingFactor"/>.</summary>
    public bool Renormalize { get; init; }

    /// <summary>Groups of consecutive expert ids for grouped selection (<c>n_group</c>): 0 (the default) or 1 for none, otherwise
    /// a divisor of the number of experts, at most <see cref="Moe.MaxGroups"/>. Each group scores the sum of its top two selection scores when a correction bias is
    /// given, else its best one (vLLM's <c>grouped_topk</c>), and only the <see cref="TopKGroups"/> best groups are searched.</summary>
    public int NumGroups { get; init; }

    /// <summary>Groups searched (<c>topk_group</c>) when <see cref="NumGroups"/> is above 1: from 1 to <see cref="NumGroups"/>, and
    /// their experts at least <c>topK</c>. Ignored without groups (must still not be negative).</summary>
    public int TopKGroups { get; init; }

    /// <summary>Multiplies the final weights (<c>routed_scaling_factor</c>), after any renormalisation: 0 (the default) for none,
    /// otherwise positive and finite.</summary>
    public float RoutedScalingFactor { get; init; }
}
