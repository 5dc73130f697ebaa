namespace LlmKernels.Peers;

/// <summary>
/// The tensors of an in-place peer (LlmKernels, naive C#, TensorPrimitives) in the element type it
/// runs: x, weight and y, and for the fused form the residual it updates plus a pristine copy that
/// <see cref="Reset"/> restores.
/// </summary>
public sealed unsafe class PeerBuffers : IDisposable
{
    public PeerBuffers(RmsNormInputs inputs, BenchDtype dtype)
    {
        var @case = inputs.Case;
        Case = @case;
        Dtype = dtype;
        X = Elements.ToBuffer(inputs.X.As<float>(), @case.Elements, dtype);
        Weight = Elements.ToBuffer(inputs.Weight.As<float>(), @case.Hidden, dtype);
        Y = new NativeBuffer(@case.Elements * dtype.Size());
        Y.Touch();
        if (@case.Fused)
        {
            ResidualInitial = Elements.ToBuffer(inputs.Residual!.As<float>(), @case.Elements, dtype);
            Residual = new NativeBuffer(ResidualInitial.Bytes);
            Reset();
        }
    }

    public RmsNormCase Case { get; }
    public BenchDtype Dtype { get; }
    public NativeBuffer X { get; }
    public NativeBuffer Weight { get; }
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
        Y.Dispose();
        Residual?.Dispose();
        ResidualInitial?.Dispose();
    }
}
