using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// RoPE as a C# developer writes it without thinking about speed: scalar loops over tokens, q and k
/// heads and pairs, reading the cos/sin cache row of the token's position, in place on the fused
/// qkv buffer, on the calling thread only.
/// </summary>
public static class NaiveRopePeer
{
    public static IRopePeer Create(RopeInputs inputs, BenchDtype dtype) => dtype switch
    {
        BenchDtype.F32 => new NaiveRopePeer<float, F32Codec>(inputs),
        BenchDtype.F16 => new NaiveRopePeer<Half, F16Codec>(inputs),
        _ => new NaiveRopePeer<ushort, Bf16Codec>(inputs),
    };
}

public sealed unsafe class NaiveRopePeer<T, TCodec> : IRopePeer
    where T : unmanaged where TCodec : IElementCodec<T>
{
    private readonly RopeBuffers _buffers;
    private readonly RopeInputs _inputs;

    public NaiveRopePeer(RopeInputs inputs)
    {
        _inputs = inputs;
        _buffers = new RopeBuffers(inputs, TCodec.Dtype);
    }

    public string Name => PeerNames.Naive;
    public BenchDtype Dtype => TCodec.Dtype;
    public int Threads => 1;
    public void* Qk => _buffers.Qkv.Pointer;
    public long TokenStride => RopeCase.TokenStride;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run()
    {
        const long half = RopeCase.RotDim / 2;
        int* positions = _inputs.Positions.As<int>();
        bool gptj = _inputs.Case.Gptj;
        for (long t = 0; t < _buffers.Tokens; t++)
        {
            float* row = _inputs.Cache.As<float>() + positions[t] * RopeCase.RotDim;
            for (long h = 0; h < RopeCase.QHeads + RopeCase.KvHeads; h++)
            {
                T* x = _buffers.Qkv.As<T>() + t * RopeCase.TokenStride + h * RopeCase.HeadDim;
                for (long j = 0; j < half; j++)
                {
                    long first = gptj ? 2 * j : j, second = gptj ? 2 * j + 1 : j + half;
                    float a = TCodec.Decode(x[first]), b = TCodec.Decode(x[second]);
                    float cos = row[j], sin = row[half + j];
                    x[first] = TCodec.Encode(a * cos - b * sin);
                    x[second] = TCodec.Encode(b * cos + a * sin);
                }
            }
        }
    }

    public void Reset() => _buffers.Reset();

    public void Dispose() => _buffers.Dispose();
}
