using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// SwiGLU as a C# developer writes it without thinking about speed: one scalar loop,
/// <c>g / (1 + MathF.Exp(-g)) * u</c>, on the calling thread only.
/// </summary>
public static class NaiveSwiGluPeer
{
    public static ISwiGluPeer Create(SwiGluInputs inputs, BenchDtype dtype) => dtype switch
    {
        BenchDtype.F32 => new NaiveSwiGluPeer<float, F32Codec>(inputs),
        BenchDtype.F16 => new NaiveSwiGluPeer<Half, F16Codec>(inputs),
        _ => new NaiveSwiGluPeer<ushort, Bf16Codec>(inputs),
    };
}

public sealed unsafe class NaiveSwiGluPeer<T, TCodec> : ISwiGluPeer
    where T : unmanaged where TCodec : IElementCodec<T>
{
    private readonly SwiGluBuffers _buffers;

    public NaiveSwiGluPeer(SwiGluInputs inputs) => _buffers = new SwiGluBuffers(inputs, TCodec.Dtype);

    public string Name => PeerNames.Naive;
    public BenchDtype Dtype => TCodec.Dtype;
    public int Threads => 1;
    public void* Out => _buffers.Out.Pointer;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run()
    {
        long d = _buffers.D;
        bool split = _buffers.Up is not null;
        long stride = split ? d : 2 * d;
        T* x = _buffers.X.As<T>(), output = _buffers.Out.As<T>();
        T* upBase = split ? _buffers.Up!.As<T>() : x + d;
        for (long t = 0; t < _buffers.Tokens; t++)
        {
            T* gate = x + t * stride, up = upBase + t * stride, o = output + t * d;
            for (long i = 0; i < d; i++)
            {
                float g = TCodec.Decode(gate[i]);
                o[i] = TCodec.Encode(g / (1 + MathF.Exp(-g)) * TCodec.Decode(up[i]));
            }
        }
    }

    public void Reset() { }

    public void Dispose() => _buffers.Dispose();
}
