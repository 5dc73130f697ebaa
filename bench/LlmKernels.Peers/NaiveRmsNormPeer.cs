using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// RMSNorm as a C# developer writes it without thinking about speed: scalar loops, one row at a
/// time, an f32 sum of squares, on the calling thread only (single-threaded by nature). The fused
/// form adds the residual in its own pass first, as two library calls would.
/// </summary>
public static class NaiveRmsNormPeer
{
    public static INormPeer Create(RmsNormInputs inputs, BenchDtype dtype) => dtype switch
    {
        BenchDtype.F32 => new NaiveRmsNormPeer<float, F32Codec>(inputs),
        BenchDtype.F16 => new NaiveRmsNormPeer<Half, F16Codec>(inputs),
        _ => new NaiveRmsNormPeer<ushort, Bf16Codec>(inputs),
    };
}

public sealed unsafe class NaiveRmsNormPeer<T, TCodec> : INormPeer
    where T : unmanaged where TCodec : IElementCodec<T>
{
    private readonly PeerBuffers _buffers;

    public NaiveRmsNormPeer(RmsNormInputs inputs) => _buffers = new PeerBuffers(inputs, TCodec.Dtype);

    public string Name => PeerNames.Naive;
    public BenchDtype Dtype => TCodec.Dtype;
    public int Threads => 1;
    public void* Y => _buffers.Y.Pointer;
    public void* ResidualOut => _buffers.Residual is { } r ? r.Pointer : null;

    // Large shapes run only a handful of calls: optimise now rather than time tier-0 code.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run()
    {
        long rows = _buffers.Rows, hidden = _buffers.Hidden;
        T* x = _buffers.X.As<T>(), w = _buffers.Weight.As<T>(), y = _buffers.Y.As<T>();
        T* residual = _buffers.Residual is { } r ? r.As<T>() : null;

        if (residual != null)
            for (long i = 0; i < rows * hidden; i++)
                residual[i] = TCodec.Encode(TCodec.Decode(residual[i]) + TCodec.Decode(x[i]));

        T* source = residual != null ? residual : x;
        for (long row = 0; row < rows; row++)
        {
            T* s = source + row * hidden, d = y + row * hidden;
            float squares = 0;
            for (long j = 0; j < hidden; j++)
            {
                float v = TCodec.Decode(s[j]);
                squares += v * v;
            }
            float scale = 1f / MathF.Sqrt(squares / hidden + RmsNormCase.Epsilon);
            for (long j = 0; j < hidden; j++)
                d[j] = TCodec.Encode(TCodec.Decode(s[j]) * scale * TCodec.Decode(w[j]));
        }
    }

    public void Reset() => _buffers.Reset();

    public void Dispose() => _buffers.Dispose();
}
