namespace LlmKernels.Peers;

/// <summary>
/// The tensors of an in-place norm peer (LlmKernels, naive C#, TensorPrimitives) in the element
/// type it runs: x, weight (and LayerNorm's bias) and y, and for the fused form the residual it
/// updates plus a pristine copy that <see cref="Reset"/> restores (post-norm reads the residual:
/// the copy is restored all the same, unchanged).
/// </summary>
public sealed unsafe class PeerBuffers : IDisposable
{
    public PeerBuffers(INormInputs inputs, BenchDtype dtype)
    {
        Rows = inputs.Rows;
        Hidden = inputs.Hidden;
        Dtype = dtype;
        long elements = Rows * Hidden;
        X = Elements.ToBuffer(inputs.X.As<float>(), elements, dtype);
        Weight = Elements.ToBuffer(inputs.Weight.As<float>(), Hidden, dtype);
        Bias = inputs.Bias is { } bias ? Elements.ToBuffer(bias.As<float>(), Hidden, dtype) : null;
        Y = new NativeBuffer(elements * dtype.Size());
        Y.Touch();
        Post = inputs.Post;
        if (inputs.Fused || inputs.Post)
        {
            ResidualInitial = Elements.ToBuffer(inputs.Residual!.As<float>(), elements, dtype);
            Residual = new NativeBuffer(ResidualInitial.Bytes);
            Reset();
        }
    }

    public long Rows { get; }
    public long Hidden { get; }
    public BenchDtype Dtype { get; }

    /// <summary>Post-norm: <see cref="Residual"/> is an input only.</summary>
    public bool Post { get; }
    public NativeBuffer X { get; }
    public NativeBuffer Weight { get; }
    public NativeBuffer? Bias { get; }
    public NativeBuffer Y { get; }
    public NativeBuffer? Residual { get; }
    public NativeBuffer? ResidualInitial { get; }

    public void Reset()
    {
        if (Residual is not null)
            Buffer.MemoryCopy(ResidualInitial!.Pointer, Residual.Pointer, Residual.Bytes, Residual.Bytes);
    }

    public void Dispose()
    {
        X.Dispose();
        Weight.Dispose();
        Bias?.Dispose();
        Y.Dispose();
        Residual?.Dispose();
        ResidualInitial?.Dispose();
    }
}
