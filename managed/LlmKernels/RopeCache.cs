using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>The frequency scaling rules of HF's <c>rope_scaling.rope_type</c> (vLLM's rotary embeddings).</summary>
public enum RopeScalingType
{
    /// <summary><c>"default"</c>: no scaling, <c>inv_freq[j] = theta^(-2j/d)</c>.</summary>
    Default = 0,

    /// <summary><c>"linear"</c>: positions divided by <see cref="RopeScaling.Factor"/> (position interpolation).</summary>
    Linear = 1,

    /// <summary><c>"dynamic"</c>: NTK-aware, theta scaled for the cache length (HF's dynamic NTK at the cache length, vLLM's static form).</summary>
    Dynamic = 2,

    /// <summary><c>"yarn"</c>: YaRN's ramp between interpolated and original frequencies, cos and sin scaled by the attention factor.</summary>
    Yarn = 3,

    /// <summary><c>"llama3"</c>: Llama 3.1's wavelength-banded interpolation.</summary>
    Llama3 = 4,
}

/// <summary>
/// A <c>rope_scaling</c> entry of an HF config, with HF's field names. Only the fields of
/// <see cref="RopeType"/> are read; the factories set them with HF's defaults. Formulas: docs/rope.md.
/// </summary>
public sealed record RopeScaling
{
    /// <summary>The rule (<c>rope_type</c>).</summary>
    public RopeScalingType RopeType { get; init; }

    /// <summary><c>factor</c>: at least 1 for every rule but <see cref="RopeScalingType.Default"/>.</summary>
    public double Factor { get; init; } = 1.0;

    /// <summary><c>original_max_position_embeddings</c>: the pre-training context (dynamic, YaRN, Llama 3).</summary>
    public int OriginalMaxPositionEmbeddings { get; init; }

    /// <summary><c>beta_fast</c> (YaRN): rotations below which frequencies are interpolated; 32 in HF.</summary>
    public double BetaFast { get; init; } = 32.0;

    /// <summary><c>beta_slow</c> (YaRN): rotations above which frequencies are kept; 1 in HF.</summary>
    public double BetaSlow { get; init; } = 1.0;

    /// <summary><c>attention_factor</c> (YaRN): multiplies cos and sin; null means <c>0.1 ln(factor) + 1</c>.</summary>
    public double? AttentionFactor { get; init; }

    /// <summary><c>low_freq_factor</c> (Llama 3): 1 in Llama 3.1.</summary>
    public double LowFreqFactor { get; init; } = 1.0;

    /// <summary><c>high_freq_factor</c> (Llama 3): 4 in Llama 3.1.</summary>
    public double HighFreqFactor { get; init; } = 4.0;

    /// <summary>No scaling.</summary>
    public static RopeScaling None { get; } = new();

    /// <summary>Linear position interpolation: positions divided by <paramref name="factor"/>.</summary>
    /// <param name="factor">At least 1.</param>
    public static RopeScaling Linear(double factor) => new() { RopeType = RopeScalingType.Linear, Factor = factor };

    /// <summary>Dynamic NTK scaling of theta for a cache longer than <paramref name="originalMaxPositionEmbeddings"/>.</summary>
    /// <param name="factor">At least 1.</param>
    /// <param name="originalMaxPositionEmbeddings">The pre-training context length.</param>
    public static RopeScaling Dynamic(double factor, int originalMaxPositionEmbeddings) =>
        new() { RopeType = RopeScalingType.Dynamic, Factor = factor, OriginalMaxPositionEmbeddings = originalMaxPositionEmbeddings };

    /// <summary>YaRN.</summary>
    /// <param name="factor">At least 1.</param>
    /// <param name="originalMaxPositionEmbeddings">The pre-training context length.</param>
    /// <param name="betaFast">Rotations below which frequencies are interpolated.</param>
    /// <param name="betaSlow">Rotations above which frequencies are kept.</param>
    /// <param name="attentionFactor">The cos/sin multiplier; null means <c>0.1 ln(factor) + 1</c>.</param>
    public static RopeScaling Yarn(double factor, int originalMaxPositionEmbeddings, double betaFast = 32.0, double betaSlow = 1.0,
                                   double? attentionFactor = null) =>
        new()
        {
            RopeType = RopeScalingType.Yarn, Factor = factor, OriginalMaxPositionEmbeddings = originalMaxPositionEmbeddings,
            BetaFast = betaFast, BetaSlow = betaSlow, AttentionFactor = attentionFactor,
        };

    /// <summary>Llama 3.1's scaling (defaults: Llama 3.1 8B's config, with <paramref name="factor"/> 8).</summary>
    /// <param name="factor">At least 1 (8 in Llama 3.1, 32 in Llama 3.2).</param>
    /// <param name="originalMaxPositionEmbeddings">The pre-training context length.</param>
    /// <param name="lowFreqFactor">Wavelengths above <c>original / lowFreqFactor</c> are divided by the factor.</param>
    /// <param name="highFreqFactor">Wavelengths below <c>original / highFreqFactor</c> are kept.</param>
    public static RopeScaling Llama3(double factor = 8.0, int originalMaxPositionEmbeddings = 8192, double lowFreqFactor = 1.0,
                                     double highFreqFactor = 4.0) =>
        new()
        {
            RopeType = RopeScalingType.Llama3, Factor = factor, OriginalMaxPositionEmbeddings = originalMaxPositionEmbeddings,
            LowFreqFactor = lowFreqFactor, HighFreqFactor = highFreqFactor,
        };
}

/// <summary>
/// The cos/sin cache RoPE reads: <c>[MaxPosition, RotaryDim]</c> f32, each row the cosines of its
/// <c>RotaryDim / 2</c> angles then their sines (vLLM's <c>cos_sin_cache</c> layout), built by the
/// library in double precision and rounded once.
/// </summary>
public sealed class RopeCache
{
    private readonly float[] _values;

    private RopeCache(float[] values, int maxPosition, int rotaryDim, double theta, RopeScaling scaling)
    {
        _values = values;
        MaxPosition = maxPosition;
        RotaryDim = rotaryDim;
        Theta = theta;
        Scaling = scaling;
    }

    /// <summary>Rows of the cache: valid positions are <c>[0, MaxPosition)</c>.</summary>
    public int MaxPosition { get; }

    /// <summary>Rotated elements per head (even; at most the head dimension).</summary>
    public int RotaryDim { get; }

    /// <summary>The base (<c>rope_theta</c>).</summary>
    public double Theta { get; }

    /// <summary>The scaling rule the cache was built with.</summary>
    public RopeScaling Scaling { get; }

    /// <summary>The values, <c>[MaxPosition, RotaryDim]</c>.</summary>
    public ReadOnlySpan<float> CosSin => _values;

    /// <summary>Builds a cache (see <see cref="Kernels.BuildRopeCache"/>).</summary>
    /// <param name="maxPosition">Rows: positions <c>[0, maxPosition)</c>.</param>
    /// <param name="rotaryDim">Rotated elements per head; positive and even.</param>
    /// <param name="theta">The base (<c>rope_theta</c>): 10000 for Llama 2, 500000 for Llama 3.</param>
    /// <param name="scaling">The scaling rule; null means none.</param>
    /// <param name="context">The CPU context to run on; <see cref="CpuContext.Default"/> when null.</param>
    public static RopeCache Build(int maxPosition, int rotaryDim, double theta = 10000.0, RopeScaling? scaling = null,
                                  CpuContext? context = null)
    {
        Kernels.CheckRopeCacheShape(maxPosition, rotaryDim, nameof(maxPosition), nameof(rotaryDim));
        var values = new float[(long)maxPosition * rotaryDim];
        Kernels.BuildRopeCache(values, maxPosition, rotaryDim, theta, scaling, context);
        return new RopeCache(values, maxPosition, rotaryDim, theta, scaling ?? RopeScaling.None);
    }
}
