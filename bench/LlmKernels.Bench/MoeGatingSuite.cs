using BenchmarkDotNet.Attributes;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// MoE gating of 8192 tokens (<see cref="MoeGatingCase"/>), f32 and bf16 logits, one suite per scheme. The peers are
/// LlmKernels, ggml (llama.cpp build_moe_ffn's composition, f32) and the naive loop; there is no TensorPrimitives
/// composition, so that method's setup fails with the reason. GB/s counts the logits read and the ids and weights written.
/// </summary>
public abstract class MoeGatingSuite : PeerSuite
{
    [Params("f32", "bf16")]
    public string Dtype { get; set; } = "f32";

    public abstract MoeGatingScheme Scheme { get; }

    /// <summary>Experts per token's logits; k is 8 of 256, 2 of 64.</summary>
    public virtual int Experts => 256;

    public override IBenchCase Case =>
        new MoeGatingCase(Scheme, BenchDtypeExtensions.Parse(Dtype), MoeGatingCase.StandardTokens, Experts, Experts == 64 ? 2 : 8);
}

/// <summary>Softmax over all experts, the k best, their p (vLLM topk_softmax, no renormalisation): 256 experts k 8, 64 experts k 2.</summary>
public class MoeSoftmaxTopKBenchmarks : MoeGatingSuite
{
    [Params(256, 64)]
    public int ExpertCount { get; set; } = 256;

    public override MoeGatingScheme Scheme => MoeGatingScheme.SoftmaxTopK;
    public override int Experts => ExpertCount;
}

/// <summary>The k largest logits, the softmax of those k (Mixtral): 256 experts, k 8.</summary>
public class MoeTopKSoftmaxBenchmarks : MoeGatingSuite
{
    public override MoeGatingScheme Scheme => MoeGatingScheme.TopKSoftmax;
}

/// <summary>DeepSeek-V3: sigmoid, correction bias, 8 groups keep 4, renormalised, x 2.5: 256 experts, k 8.</summary>
public class MoeSigmoidGroupedBenchmarks : MoeGatingSuite
{
    public override MoeGatingScheme Scheme => MoeGatingScheme.SigmoidGrouped;
}
