using Microsoft.ML.OnnxRuntime.Tensors;

namespace LlmKernels.Peers;

/// <summary>
/// RoPE as ONNX Runtime's CPU execution provider computes it: a one-node model of
/// <c>RotaryEmbedding</c> (com.microsoft, interleaved 0: NeoX pairing) made by
/// bench/models/make_models.py. The op takes a contiguous [batch, tokens, hidden] input and writes a
/// separate output, so the peer holds each token's q and k heads side by side ([1, tokens, 40 *
/// 128]: one node rotates both, head_size inferred from the cache) rather than the fused qkv buffer;
/// position_ids are int64, and cos_cache and sin_cache [max_position, 64] are in the element type of
/// x, as the op requires.
/// </summary>
public sealed unsafe class OrtRopePeer : IRopePeer
{
    private readonly OrtModel _model;
    private readonly NativeBuffer _y;

    public OrtRopePeer(RopeInputs inputs, BenchDtype dtype, int threads)
    {
        Dtype = dtype;
        Threads = threads;
        long tokens = inputs.Case.Tokens;
        const long half = RopeCase.RotDim / 2;
        _model = new OrtModel($"{inputs.Case.Kernel}_{dtype.Name()}.onnx", threads); // rope_gptj: interleaved 1
        var type = OrtModel.ElementType(dtype);
        int size = dtype.Size();

        var x = new NativeBuffer(tokens * RopeCase.RotatedPerToken * size);
        for (long t = 0; t < tokens; t++)
            Elements.Convert(inputs.Qkv.As<float>() + t * RopeCase.TokenStride, x.Pointer + t * RopeCase.RotatedPerToken * size, RopeCase.RotatedPerToken, dtype);
        long[] shape = [1, tokens, RopeCase.RotatedPerToken];
        _model.BindInput("x", x, type, shape);

        var positions = new NativeBuffer(tokens * sizeof(long));
        for (long t = 0; t < tokens; t++)
            positions.As<long>()[t] = inputs.Positions.As<int>()[t];
        _model.BindInput("position_ids", positions, TensorElementType.Int64, [1, tokens]);

        var cos = new NativeBuffer(RopeCase.MaxPosition * half * size);
        var sin = new NativeBuffer(RopeCase.MaxPosition * half * size);
        for (long p = 0; p < RopeCase.MaxPosition; p++)
        {
            float* row = inputs.Cache.As<float>() + p * RopeCase.RotDim;
            Elements.Convert(row, cos.Pointer + p * half * size, half, dtype);
            Elements.Convert(row + half, sin.Pointer + p * half * size, half, dtype);
        }
        _model.BindInput("cos_cache", cos, type, [RopeCase.MaxPosition, half]);
        _model.BindInput("sin_cache", sin, type, [RopeCase.MaxPosition, half]);
        _y = _model.BindOutput("y", x.Bytes, type, shape);
    }

    public string Name => PeerNames.OnnxRuntime;
    public BenchDtype Dtype { get; }
    public int Threads { get; }
    public void* Qk => _y.Pointer;
    public long TokenStride => RopeCase.RotatedPerToken;

    public void Run() => _model.Run();

    public void Reset() { } // the input is never written

    public void Dispose() => _model.Dispose();
}
