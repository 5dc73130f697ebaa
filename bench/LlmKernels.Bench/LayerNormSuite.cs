using BenchmarkDotNet.Attributes;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>LayerNorm and its pre-norm residual form, f32 and bf16, on the shapes of <see cref="LayerNormCase.StandardShapes"/>.</summary>
public abstract class LayerNormSuite : OrtPeerSuite
{
    [Params("f32", "bf16")]
    public string Dtype { get; set; } = "f32";

    [Params("1x4096", "4096x8192")]
    public string Shape { get; set; } = "1x4096";

    /// <summary>The pre-norm residual form or plain LayerNorm.</summary>
    public abstract bool Fused { get; }

    public override IBenchCase Case
    {
        get
        {
            var (rows, hidden) = RmsNormCase.ParseShape(Shape);
            return new LayerNormCase(Fused, BenchDtypeExtensions.Parse(Dtype), rows, hidden);
        }
    }
}

/// <summary>y = (x - mean) / sqrt(var + eps) * w + b. Bytes per call: x read + y written (+ weight and bias once).</summary>
public class LayerNormBenchmarks : LayerNormSuite
{
    public override bool Fused => false;
}

/// <summary>residual += x; y = LayerNorm(residual). Bytes per call: x and residual read, residual and y written.</summary>
public class FusedAddLayerNormBenchmarks : LayerNormSuite
{
    public override bool Fused => true;
}
