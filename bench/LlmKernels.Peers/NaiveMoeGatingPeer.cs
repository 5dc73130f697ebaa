using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// MoE gating as a C# developer writes it without thinking about speed, on the calling thread only: per token,
/// the scores in an f32 array (softmax with <c>MathF.Exp</c>, the logits, or sigmoid p), plus the bias for choosing;
/// with groups, each group's score (its best, or its two best summed with a bias), the kept groups by repeated
/// argmax and the others' experts out of the running; the k experts by k passes of argmax (strict &gt;: ties to the
/// lower id); their weights (softmax of the k logits for top-k-then-softmax), renormalised and scaled; then an
/// insertion sort by weight.
/// </summary>
public static class NaiveMoeGatingPeer
{
    public static IMoeGatingPeer Create(MoeGatingInputs inputs, BenchDtype dtype) => dtype switch
    {
        BenchDtype.F32 => new NaiveMoeGatingPeer<float, F32Codec>(inputs),
        BenchDtype.F16 => new NaiveMoeGatingPeer<Half, F16Codec>(inputs),
        _ => new NaiveMoeGatingPeer<ushort, Bf16Codec>(inputs),
    };
}

public sealed unsafe class NaiveMoeGatingPeer<T, TCodec> : IMoeGatingPeer
    where T : unmanaged where TCodec : IElementCodec<T>
{
    private readonly MoeGatingBuffers _buffers;
    private readonly MoeGatingScheme _scheme;
    private readonly int _tokens, _experts, _topK;
    // Per-token scratch, allocated once.
    private readonly float[] _value, _score, _groupScore;
    private readonly bool[] _out;

    public NaiveMoeGatingPeer(MoeGatingInputs inputs)
    {
        var c = inputs.Case;
        _buffers = new MoeGatingBuffers(inputs, TCodec.Dtype);
        _scheme = c.Scheme;
        _tokens = (int)c.Tokens;
        _experts = (int)c.Experts;
        _topK = c.TopK;
        _value = new float[_experts];
        _score = new float[_experts];
        _out = new bool[_experts];
        _groupScore = new float[Math.Max(1, _scheme.Groups)];
    }

    public string Name => PeerNames.Naive;
    public BenchDtype Dtype => TCodec.Dtype;
    public int Threads => 1;
    public int* Ids => _buffers.Ids.As<int>();
    public long IdsStride => _topK;
    public float* Weights => _buffers.Weights.As<float>();

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run()
    {
        T* logits = _buffers.Logits.As<T>();
        float* bias = _buffers.Bias is { } b ? b.As<float>() : null;
        int* ids = Ids;
        float* weights = Weights;
        for (int t = 0; t < _tokens; t++)
            Route(logits + (long)t * _experts, bias, ids + (long)t * _topK, weights + (long)t * _topK);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Route(T* row, float* bias, int* ids, float* weights)
    {
        int n = _experts;
        float max = float.NegativeInfinity, sum = 0;
        for (int e = 0; e < n; e++)
            max = MathF.Max(max, TCodec.Decode(row[e]));
        for (int e = 0; e < n; e++)
        {
            float x = TCodec.Decode(row[e]);
            float v = _scheme.Scoring switch
            {
                MoeScoring.SoftmaxTopK => MathF.Exp(x - max),
                MoeScoring.Sigmoid => 1f / (1f + MathF.Exp(-x)),
                _ => x,
            };
            _value[e] = v;
            sum += v;
        }
        for (int e = 0; e < n; e++)
        {
            if (_scheme.Scoring == MoeScoring.SoftmaxTopK)
                _value[e] /= sum;
            _score[e] = bias == null ? _value[e] : _value[e] + bias[e];
            _out[e] = false;
        }

        if (_scheme.Grouped)
        {
            int groups = _scheme.Groups, size = n / groups;
            for (int g = 0; g < groups; g++)
            {
                float best = float.NegativeInfinity, second = float.NegativeInfinity;
                for (int e = g * size; e < (g + 1) * size; e++)
                {
                    if (_score[e] > best) { second = best; best = _score[e]; }
                    else if (_score[e] > second) second = _score[e];
                }
                _groupScore[g] = bias == null ? best : best + second;
            }
            // Drop the worst groups one by one: the last of the lowest score (ties keep the lower group).
            for (int dropped = 0; dropped < groups - _scheme.KeptGroups; dropped++)
            {
                int worst = -1;
                for (int g = 0; g < groups; g++)
                    if (_groupScore[g] != float.PositiveInfinity && (worst < 0 || _groupScore[g] <= _groupScore[worst]))
                        worst = g;
                _groupScore[worst] = float.PositiveInfinity;
                for (int e = worst * size; e < (worst + 1) * size; e++)
                    _out[e] = true;
            }
        }

        float total = 0;
        for (int j = 0; j < _topK; j++)
        {
            int pick = -1;
            for (int e = 0; e < n; e++)
                if (!_out[e] && (pick < 0 || _score[e] > _score[pick]))
                    pick = e;
            _out[pick] = true;
            ids[j] = pick;
            weights[j] = _value[pick];
        }
        if (_scheme.Scoring == MoeScoring.TopKSoftmax)
        {
            float top = weights[0]; // the largest chosen logit
            for (int j = 0; j < _topK; j++)
                weights[j] = MathF.Exp(weights[j] - top);
        }
        for (int j = 0; j < _topK; j++)
            total += weights[j];
        float scale = (_scheme.Renormalize || _scheme.Scoring == MoeScoring.TopKSoftmax ? 1 / total : 1)
                      * (_scheme.RoutedScaling != 0 ? _scheme.RoutedScaling : 1);
        for (int j = 0; j < _topK; j++)
            weights[j] *= scale;

        // Descending weight, ties to the lower id.
        for (int i = 1; i < _topK; i++)
            for (int j = i; j > 0 && (weights[j] > weights[j - 1] || (weights[j] == weights[j - 1] && ids[j] < ids[j - 1])); j--)
            {
                (ids[j], ids[j - 1]) = (ids[j - 1], ids[j]);
                (weights[j], weights[j - 1]) = (weights[j - 1], weights[j]);
            }
    }

    public void Reset() { } // inputs are only read

    public void Dispose() => _buffers.Dispose();
}
