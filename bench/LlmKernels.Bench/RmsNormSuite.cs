using BenchmarkDotNet.Attributes;
using LlmKernels.Peers;

namespace LlmKernels.Bench;

/// <summary>RMSNorm and its fused residual-add form, f32 and bf16, on the shapes of <see cref="RmsNormCase.StandardShapes"/>.</summary>
public abstract class RmsNormSuite : OrtPeerSuite
{
    [Params("f32", "bf16")]
    public string Dtype { get; set; } = "f32";

    [Params("1x4096", "512x4096", "4096x8192")]
    public string Shape { get; set; } = "1x4096";

    /// <summary>The fused residual-add form or plain RMSNorm.</summary>
    public abstract bool Fused { get; }

    public override IBenchCase Case
    {
        get
        {
            var (rows, hidden) = RmsNormCase.ParseShape(Shape);
            return new RmsNormCase(Fused, BenchDtypeExtensions.Parse(Dtype), rows, hidden);
        }
    }
}

/// <summary>RMSNorm: y = x / rms(x) * w. Bytes per call: x read + y written (+ the weight once).</summary>
public class RmsNormBenchmarks : RmsNormSuite
{
    public override bool Fused => false;
}

/// <summary>residual += x; y = RmsNorm(residual) * w. Bytes per call: x and residual read, residual and y written.</summary>
public class FusedAddRmsNormBenchmarks : RmsNormSuite
{
    public override bool Fused => true;
}
