using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// LayerNorm as a C# developer writes it without thinking about speed: scalar loops, one row at a
/// time, the mean then the variance of the centred row (two passes, f32 sums), on the calling
/// thread only. The fused form adds the residual in its own pass first, as two library calls would.
/// </summary>
public static class NaiveLayerNormPeer
{
    public static INormPeer Create(LayerNormInputs inputs, BenchDtype dtype) => dtype switch
    {
        BenchDtype.F32 => new NaiveLayerNormPeer<float, F32Codec>(inputs),
        BenchDtype.F16 => new NaiveLayerNormPeer<Half, F16Codec>(inputs),
        _ => new NaiveLayerNormPeer<ushort, Bf16Codec>(inputs),
    };
}

public sealed unsafe class NaiveLayerNormPeer<T, TCodec> : INormPeer
    where T : unmanaged where TCodec : IElementCodec<T>
{
    private readonly PeerBuffers _buffers;

    public NaiveLayerNormPeer(LayerNormInputs inputs) => _buffers = new PeerBuffers(inputs, TCodec.Dtype);

    public string Name => PeerNames.Naive;
    public BenchDtype Dtype => TCodec.Dtype;
    public int Threads => 1;
    public void* Y => _buffers.Y.Pointer;
    public void* ResidualOut => !_buffers.Post && _buffers.Residual is { } r ? r.Pointer : null;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run()
    {
        long rows = _buffers.Rows, hidden = _buffers.Hidden;
        T* x = _buffers.X.As<T>(), w = _buffers.Weight.As<T>(), b = _buffers.Bias!.As<T>(), y = _buffers.Y.As<T>();
        T* residual = _buffers.Residual is { } r ? r.As<T>() : null;

        // Pre-norm: the add in its own pass into the residual; post-norm: into y, normalised there.
        T* added = _buffers.Post ? y : residual;
        if (residual != null)
            for (long i = 0; i < rows * hidden; i++)
                added[i] = TCodec.Encode(TCodec.Decode(residual[i]) + TCodec.Decode(x[i]));

        T* source = residual != null ? added : x;
        for (long row = 0; row < rows; row++)
        {
            T* s = source + row * hidden, d = y + row * hidden;
            float sum = 0;
            for (long j = 0; j < hidden; j++)
                sum += TCodec.Decode(s[j]);
            float mean = sum / hidden;
            float squares = 0;
            for (long j = 0; j < hidden; j++)
            {
                float centred = TCodec.Decode(s[j]) - mean;
                squares += centred * centred;
            }
            float scale = 1f / MathF.Sqrt(squares / hidden + LayerNormCase.Epsilon);
            for (long j = 0; j < hidden; j++)
                d[j] = TCodec.Encode((TCodec.Decode(s[j]) - mean) * scale * TCodec.Decode(w[j]) + TCodec.Decode(b[j]));
        }
    }

    public void Reset() => _buffers.Reset();

    public void Dispose() => _buffers.Dispose();
}
