using BenchmarkDotNet.Attributes;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>
/// SwiGLU, d = 14336, f32 and bf16, one decode token or a 4096-token prefill. No ONNX Runtime
/// method: it has no SwiGLU op on the CPU.
/// </summary>
public abstract class SwiGluSuite : PeerSuite
{
    [Params("f32", "bf16")]
    public string Dtype { get; set; } = "f32";

    [Params(1, 4096)]
    public int Tokens { get; set; } = 1;

    /// <summary>Gate and up as two tensors, or packed [gate | up] rows.</summary>
    public abstract bool Split { get; }

    public override IBenchCase Case => new SwiGluCase(Split, BenchDtypeExtensions.Parse(Dtype), Tokens, SwiGluCase.IntermediateSize);
}

/// <summary>out = silu(gate) * up over packed [gate | up] rows of 2*d (vLLM's silu_and_mul). Bytes: 2*d read + d written per token.</summary>
public class SwiGluBenchmarks : SwiGluSuite
{
    public override bool Split => false;
}

/// <summary>out = silu(gate) * up with gate and up separate [tokens, d] tensors. Bytes: 2*d read + d written per token.</summary>
public class SwiGluSplitBenchmarks : SwiGluSuite
{
    public override bool Split => true;
}
