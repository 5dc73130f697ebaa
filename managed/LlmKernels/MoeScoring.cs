namespace LlmKernels;

/// <summary>
/// How <see cref="Moe.Gating{T}(ReadOnlySpan{T}, Span{float}, Span{int}, int, int, int, MoeGatingOptions?, ReadOnlySpan{float}, int, CpuContext?)"/>
/// turns a token's router logits into scores, which of them choose the experts, and which become the weights.
/// </summary>
/// <remarks>Every ranking is by descending score, ties to the lower expert id, NaN below negative infinity.
/// Formulas: docs/moe.md.</remarks>
public enum MoeScoring
{
    /// <summary>
    /// <c>p = softmax(logits)</c> over all experts; the <c>topK</c> largest <c>p</c> are chosen, and their <c>p</c> are the weights
    /// (vLLM's <c>topk_softmax</c>; Qwen-MoE, DeepSeek-V2, OLMoE). A NaN logit makes the token's weights NaN.
    /// </summary>
    SoftmaxTopK = 0,

    /// <summary>
    /// The <c>topK</c> largest logits are chosen, and the weights are the softmax over those <c>topK</c> logits only (Mixtral).
    /// </summary>
    TopKSoftmax = 1,

    /// <summary>
    /// <c>p = sigmoid(logits)</c>; the <c>topK</c> largest <c>p + correctionBias</c> are chosen (the bias only chooses:
    /// DeepSeek-V3's aux-loss-free load balancing), and their <c>p</c> are the weights (DeepSeek-V3, with grouped selection,
    /// renormalisation and a routed scaling factor).
    /// </summary>
    Sigmoid = 2,
}
