using BenchmarkDotNet.Attributes;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>LayerNorm and its pre-norm and post-norm residual forms, f32 and bf16, on the shapes of <see cref="LayerNormCase.StandardShapes"/>.</summary>
public abstract class LayerNormSuite : OrtPeerSuite
{
    [Params("f32", "bf16")]
    public string Dtype { get; set; } = "f32";

    [Params("1x4096", "4096x8192")]
    public string Shape { get; set; } = "1x4096";

    /// <summary>The pre-norm residual form or plain LayerNorm.</summary>
    public abstract bool Fused { get; }

    /// <summary>Post-norm with alpha 1 (y = LayerNorm(x + residual), the residual read only).</summary>
    public virtual bool Post => false;

    public override IBenchCase Case
    {
        get
        {
            var (rows, hidden) = RmsNormCase.ParseShape(Shape);
            return new LayerNormCase(Fused, BenchDtypeExtensions.Parse(Dtype), rows, hidden, Post);
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

/// <summary>y = LayerNorm(x + residual), residual read only (lk_norm POST, alpha 1). Bytes per call: x and residual read, y written.</summary>
public class PostLayerNormBenchmarks : LayerNormSuite
{
    public override bool Fused => false;

    public override bool Post => true;
}
