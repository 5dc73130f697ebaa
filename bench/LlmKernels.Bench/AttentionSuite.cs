using BenchmarkDotNet.Attributes;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// Attention, 32 q heads, 8 kv heads, head_dim 128 (<see cref="AttentionCase"/>). The peers are
/// LlmKernels, ggml (flash_attn_ext, K/V f16), ONNX Runtime (GroupQueryAttention, f32 or f16) and
/// the naive loops; there is no TensorPrimitives composition, so that method's setup fails with
/// the reason. The naive method times its slice of the call (one head of a prefill, one sequence
/// of a decode: <see cref="IBenchCase.WorkFractionFor"/>): its GB/s and GFLOP/s count the slice's
/// work, but BenchmarkDotNet's Ratio is of the slice's time; `llmk bench` scales the time to the whole call.
/// </summary>
public abstract class AttentionSuite : OrtPeerSuite
{
}

/// <summary>Causal prefill of one 2048-token sequence, q/k/v/out in the element type; see the GFLOP/s column.</summary>
public class AttentionPrefillBenchmarks : AttentionSuite
{
    [Params("f32", "bf16")]
    public string Dtype { get; set; } = "f32";

    public override IBenchCase Case => new AttentionCase(BenchDtypeExtensions.Parse(Dtype), Decode: false, Batch: 1, Context: 2048);
}

/// <summary>Decode of 8 sequences, one query token each, over a paged bf16 cache (block size 16, shuffled table); GB/s of K and V read.</summary>
public class AttentionDecodeBenchmarks : AttentionSuite
{
    [Params(4096, 32768)]
    public int Context { get; set; } = 4096;

    public override IBenchCase Case => new AttentionCase(BenchDtype.Bf16, Decode: true, Batch: 8, Context: Context);
}
