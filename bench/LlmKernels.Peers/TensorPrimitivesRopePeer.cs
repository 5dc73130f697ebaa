using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// RoPE composed from TensorPrimitives, in place on the fused qkv buffer: per token, the cos and sin
/// halves of its cache row, then per q and k head, with a = x[0, 64) and b = x[64, 128):
/// <c>Multiply</c> a cos and b sin, <c>Multiply</c> b cos, <c>MultiplyAdd</c> a sin + b cos into b,
/// <c>Subtract</c> into a. Single-threaded by nature. bf16 tokens are widened into f32 scratch (q and
/// k heads) and narrowed back with <see cref="Bf16Rows"/>.
/// </summary>
public sealed unsafe class TensorPrimitivesRopePeer : IRopePeer
{
    private const int Half = (int)(RopeCase.RotDim / 2);
    private readonly RopeBuffers _buffers;
    private readonly RopeInputs _inputs;
    private readonly NativeBuffer _scratch; // three pair-halves of products, then (bf16) the token's q and k heads

    public TensorPrimitivesRopePeer(RopeInputs inputs, BenchDtype dtype)
    {
        if (dtype == BenchDtype.F16)
            throw new NotSupportedException("the TensorPrimitives peer runs f32 and bf16");
        if (inputs.Case.Gptj)
            throw new NotSupportedException("TensorPrimitives has no strided or interleaved span operations: GPT-J pairs (2j, 2j + 1) are not a composition of them");
        _inputs = inputs;
        _buffers = new RopeBuffers(inputs, dtype);
        _scratch = new NativeBuffer((3 * Half + RopeCase.RotatedPerToken) * sizeof(float));
    }

    public string Name => PeerNames.TensorPrimitives;
    public BenchDtype Dtype => _buffers.Dtype;
    public int Threads => 1;
    public void* Qk => _buffers.Qkv.Pointer;
    public long TokenStride => RopeCase.TokenStride;

    // Large shapes run only a handful of calls: optimise now rather than time tier-0 code.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run()
    {
        float* scratch = _scratch.As<float>(), widened = scratch + 3 * Half;
        var ac = new Span<float>(scratch, Half);
        var bs = new Span<float>(scratch + Half, Half);
        var bc = new Span<float>(scratch + 2 * Half, Half);
        int* positions = _inputs.Positions.As<int>();
        for (long t = 0; t < _buffers.Tokens; t++)
        {
            float* row = _inputs.Cache.As<float>() + positions[t] * RopeCase.RotDim;
            var cos = new ReadOnlySpan<float>(row, Half);
            var sin = new ReadOnlySpan<float>(row + Half, Half);
            float* heads;
            if (Dtype == BenchDtype.F32)
            {
                heads = _buffers.Qkv.As<float>() + t * RopeCase.TokenStride;
            }
            else
            {
                heads = widened;
                Bf16Rows.Widen(_buffers.Qkv.As<ushort>() + t * RopeCase.TokenStride, heads, RopeCase.RotatedPerToken);
            }
            for (long h = 0; h < RopeCase.QHeads + RopeCase.KvHeads; h++)
            {
                var a = new Span<float>(heads + h * RopeCase.HeadDim, Half);
                var b = new Span<float>(heads + h * RopeCase.HeadDim + Half, Half);
                TensorPrimitives.Multiply(a, cos, ac);
                TensorPrimitives.Multiply(b, sin, bs);
                TensorPrimitives.Multiply(b, cos, bc);
                TensorPrimitives.MultiplyAdd(a, sin, bc, b);
                TensorPrimitives.Subtract(ac, bs, a);
            }
            if (Dtype != BenchDtype.F32)
                Bf16Rows.Narrow(heads, _buffers.Qkv.As<ushort>() + t * RopeCase.TokenStride, RopeCase.RotatedPerToken);
        }
    }

    public void Reset() => _buffers.Reset();

    public void Dispose()
    {
        _buffers.Dispose();
        _scratch.Dispose();
    }
}
