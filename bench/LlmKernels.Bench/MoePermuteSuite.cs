using BenchmarkDotNet.Attributes;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// MoE permute and combine with Mixtral-8x7B's routing (<see cref="MoePermuteCase"/>: 8 experts, k 2, hidden 4096), f32
/// and bf16, a 4096-token prefill or one decode token. The peers are LlmKernels, ggml (ggml_get_rows; build_moe_ffn's
/// tail, f32) and the naive loops; there is no TensorPrimitives composition, so that method's setup fails with the
/// reason. BenchmarkDotNet times repeated calls (warm), where `llmk bench` times the prefill cold.
/// </summary>
public abstract class MoePermuteSuite : PeerSuite
{
    [Params("f32", "bf16")]
    public string Dtype { get; set; } = "f32";

    [Params(4096, 1)]
    public int Tokens { get; set; } = 4096;

    /// <summary>The combine, or the permute.</summary>
    public abstract bool Combine { get; }

    public override IBenchCase Case => new MoePermuteCase(Combine, BenchDtypeExtensions.Parse(Dtype), Tokens,
        MoePermuteCase.StandardExperts, MoePermuteCase.StandardTopK, MoePermuteCase.StandardHidden);
}

/// <summary>Token rows gathered into expert order. Bytes: tokens * k rows read and written, plus the int32 row index.</summary>
public class MoePermuteBenchmarks : MoePermuteSuite
{
    public override bool Combine => false;
}

/// <summary>Expert rows summed back per token with the weights. Bytes: k rows read and one written per token, plus the weights and slot rows.</summary>
public class MoeCombineBenchmarks : MoePermuteSuite
{
    public override bool Combine => true;
}
