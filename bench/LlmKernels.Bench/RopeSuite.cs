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

    public override IBenchCase Case => new RopeCase(BenchDtypeExtensions.Parse(Dtype), Tokens);
}

/// <summary>NeoX pairing (x[j] with x[j + 64]). Bytes: q and k read and written, plus positions and cache rows.</summary>
public class RopeNeoxBenchmarks : RopeSuite
{
}
