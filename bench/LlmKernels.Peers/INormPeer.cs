namespace LlmKernels.Peers;

/// <summary>
/// One implementation of a norm (RMSNorm or LayerNorm, plain or with the pre-norm residual add)
/// set up for one case: where its outputs are.
/// </summary>
public unsafe interface INormPeer : IBenchPeer
{
    /// <summary>The normalised output, [rows, hidden] of <see cref="IBenchPeer.Dtype"/>.</summary>
    void* Y { get; }

    /// <summary>The fused form's updated residual, [rows, hidden] of <see cref="IBenchPeer.Dtype"/>; null otherwise.</summary>
    void* ResidualOut { get; }
}

/// <summary>The f32 inputs of a norm case (<see cref="RmsNormInputs"/>, <see cref="LayerNormInputs"/>), as the shared buffers and the check read them.</summary>
public interface INormInputs
{
    /// <summary>LayerNorm (mean subtracted, bias added) rather than RMSNorm.</summary>
    bool Layer { get; }

    /// <summary>The pre-norm residual form: residual += x; y = norm(residual).</summary>
    bool Fused { get; }

    /// <summary>Post-norm with alpha 1: y = norm(round(x + residual)), the residual read only.</summary>
    bool Post { get; }

    long Rows { get; }
    long Hidden { get; }
    float Epsilon { get; }
    NativeBuffer X { get; }
    NativeBuffer Weight { get; }

    /// <summary>LayerNorm's bias; null for RMSNorm.</summary>
    NativeBuffer? Bias { get; }

    /// <summary>The residual before the call; null unless <see cref="Fused"/> or <see cref="Post"/>.</summary>
    NativeBuffer? Residual { get; }
}
