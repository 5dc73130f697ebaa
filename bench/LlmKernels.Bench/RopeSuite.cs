using BenchmarkDotNet.Attributes;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// RoPE in place on the q and k heads of a fused qkv buffer (32 q heads, 8 kv heads, head_dim 128,
/// rope_theta 500000), f32 and bf16, one decode token at position 4095 or a 4096-token prefill.
/// </summary>
public abstract class RopeSuite : OrtPeerSuite
{
    [Params("f32", "bf16")]
    public string Dtype { get; set; } = "f32";

    [Params(1, 4096)]
    public int Tokens { get; set; } = 1;

    /// <summary>GPT-J pairing rather than NeoX.</summary>
    public virtual bool Gptj => false;

    public override IBenchCase Case => new RopeCase(BenchDtypeExtensions.Parse(Dtype), Tokens, Gptj);
}

/// <summary>NeoX pairing (x[j] with x[j + 64]). Bytes: q and k read and written, plus positions and cache rows.</summary>
public class RopeNeoxBenchmarks : RopeSuite
{
}

/// <summary>GPT-J pairing (x[2j] with x[2j + 1]; ggml mode 0, ONNX Runtime interleaved 1). Bytes as NeoX.</summary>
public class RopeGptjBenchmarks : RopeSuite
{
    public override bool Gptj => true;
}
