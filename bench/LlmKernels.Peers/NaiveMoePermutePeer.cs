using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// MoE permute and combine as a C# developer writes them without thinking about speed, on the calling thread only,
/// from the reference plan: permute copies each output row element by element from the token of its slot; combine
/// sums, per token and element, <c>w * x</c> over the token's k rows in f32 (<c>acc += w * x</c>, not a fused
/// multiply-add) and rounds once.
/// </summary>
public static class NaiveMoePermutePeer
{
    public static IMoePermutePeer Create(MoePermuteInputs inputs, BenchDtype dtype) => dtype switch
    {
        BenchDtype.F32 => new NaiveMoePermutePeer<float, F32Codec>(inputs),
        BenchDtype.F16 => new NaiveMoePermutePeer<Half, F16Codec>(inputs),
        _ => new NaiveMoePermutePeer<ushort, Bf16Codec>(inputs),
    };
}

public sealed unsafe class NaiveMoePermutePeer<T, TCodec> : IMoePermutePeer
    where T : unmanaged where TCodec : IElementCodec<T>
{
    private readonly MoePermuteBuffers _buffers;
    private readonly bool _combine;
    private readonly long _tokens, _hidden;
    private readonly int _topK;

    public NaiveMoePermutePeer(MoePermuteInputs inputs)
    {
        var c = inputs.Case;
        _buffers = new MoePermuteBuffers(inputs, TCodec.Dtype, inputs.Plan);
        _combine = c.Combine;
        _tokens = c.Tokens;
        _hidden = c.Hidden;
        _topK = c.TopK;
    }

    public string Name => PeerNames.Naive;
    public BenchDtype Dtype => TCodec.Dtype;
    public int Threads => 1;
    public void* Out => _buffers.Output.Pointer;

    public void Run()
    {
        if (_combine)
            Combine();
        else
            Permute();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Permute()
    {
        T* input = _buffers.Source.As<T>(), output = _buffers.Output.As<T>();
        int* sortedSlots = _buffers.Index.As<int>();
        long rows = _tokens * _topK;
        for (long r = 0; r < rows; r++)
        {
            T* from = input + sortedSlots[r] / _topK * _hidden, to = output + r * _hidden;
            for (long i = 0; i < _hidden; i++)
                to[i] = from[i];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Combine()
    {
        T* expertOutput = _buffers.Source.As<T>(), output = _buffers.Output.As<T>();
        int* slotRows = _buffers.Index.As<int>();
        float* weights = _buffers.Weights!.As<float>();
        for (long t = 0; t < _tokens; t++)
        {
            T* to = output + t * _hidden;
            for (long i = 0; i < _hidden; i++)
            {
                float sum = 0;
                for (int j = 0; j < _topK; j++)
                {
                    long slot = t * _topK + j;
                    sum += weights[slot] * TCodec.Decode(expertOutput[slotRows[slot] * _hidden + i]);
                }
                to[i] = TCodec.Encode(sum);
            }
        }
    }

    public void Reset() { } // inputs are only read

    public void Dispose() => _buffers.Dispose();
}
