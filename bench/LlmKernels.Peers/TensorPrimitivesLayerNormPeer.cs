using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// LayerNorm composed from TensorPrimitives, per row: <c>Sum</c> for the mean, <c>Subtract</c> it,
/// <c>SumOfSquares</c> of the centred row for the variance, <c>Multiply</c> by 1/sqrt(var + eps), then
/// <c>MultiplyAdd</c> by the weight plus the bias (the fused form adds the residual with <c>Add</c>
/// first). Single-threaded by nature. bf16 rows go through f32 row scratch (TensorPrimitives has no
/// bfloat16), widened and narrowed with <see cref="Bf16Rows"/>; weight and bias are widened once.
/// </summary>
public sealed unsafe class TensorPrimitivesLayerNormPeer : INormPeer
{
    private readonly PeerBuffers _buffers;
    private readonly NativeBuffer? _scratch; // bf16: row, other row, weight, bias (f32)

    public TensorPrimitivesLayerNormPeer(LayerNormInputs inputs, BenchDtype dtype)
    {
        if (dtype == BenchDtype.F16)
            throw new NotSupportedException("the TensorPrimitives peer runs f32 and bf16");
        _buffers = new PeerBuffers(inputs, dtype);
        if (dtype == BenchDtype.Bf16)
        {
            long hidden = inputs.Hidden;
            _scratch = new NativeBuffer(4 * hidden * sizeof(float));
            Bf16Rows.Widen(_buffers.Weight.As<ushort>(), Scratch(2), hidden);
            Bf16Rows.Widen(_buffers.Bias!.As<ushort>(), Scratch(3), hidden);
        }
    }

    public string Name => PeerNames.TensorPrimitives;
    public BenchDtype Dtype => _buffers.Dtype;
    public int Threads => 1;
    public void* Y => _buffers.Y.Pointer;
    public void* ResidualOut => !_buffers.Post && _buffers.Residual is { } r ? r.Pointer : null;

    private float* Scratch(int index) => _scratch!.As<float>() + index * _buffers.Hidden;

    public void Run()
    {
        if (Dtype == BenchDtype.F32)
            RunF32();
        else
            RunBf16();
    }

    // Large shapes run only a handful of calls: optimise now rather than time tier-0 code.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunF32()
    {
        int hidden = (int)_buffers.Hidden;
        var w = new ReadOnlySpan<float>(_buffers.Weight.Pointer, hidden);
        var b = new ReadOnlySpan<float>(_buffers.Bias!.Pointer, hidden);
        for (long row = 0; row < _buffers.Rows; row++)
        {
            long offset = row * hidden;
            var x = new Span<float>(_buffers.X.As<float>() + offset, hidden);
            var y = new Span<float>(_buffers.Y.As<float>() + offset, hidden);
            Span<float> source = x;
            if (_buffers.Residual is { } residualBuffer)
            {
                var residual = new Span<float>(residualBuffer.As<float>() + offset, hidden);
                // Post-norm: the sum goes to y and is normalised there; pre-norm updates the residual.
                source = _buffers.Post ? y : residual;
                TensorPrimitives.Add(residual, x, source);
            }
            Normalise(source, w, b, y);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunBf16()
    {
        long hidden = _buffers.Hidden;
        float* row = Scratch(0), other = Scratch(1);
        var rowSpan = new Span<float>(row, (int)hidden);
        var w = new ReadOnlySpan<float>(Scratch(2), (int)hidden);
        var b = new ReadOnlySpan<float>(Scratch(3), (int)hidden);
        for (long r = 0; r < _buffers.Rows; r++)
        {
            long offset = r * hidden;
            ushort* x = _buffers.X.As<ushort>() + offset, y = _buffers.Y.As<ushort>() + offset;
            Bf16Rows.Widen(x, row, hidden);
            if (_buffers.Residual is { } residualBuffer)
            {
                ushort* residual = residualBuffer.As<ushort>() + offset;
                Bf16Rows.Widen(residual, other, hidden);
                TensorPrimitives.Add(rowSpan, new ReadOnlySpan<float>(other, (int)hidden), rowSpan);
                // Store the rounded sum and normalise what was stored, as the ABI specifies
                // (post-norm: rounded through y, the residual read only).
                ushort* sum = _buffers.Post ? y : residual;
                Bf16Rows.Narrow(row, sum, hidden);
                Bf16Rows.Widen(sum, row, hidden);
            }
            Normalise(rowSpan, w, b, rowSpan);
            Bf16Rows.Narrow(row, y, hidden);
        }
    }

    private static void Normalise(ReadOnlySpan<float> source, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> destination)
    {
        float mean = TensorPrimitives.Sum(source) / source.Length;
        TensorPrimitives.Subtract(source, mean, destination);
        float scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(destination) / source.Length + LayerNormCase.Epsilon);
        TensorPrimitives.Multiply(destination, scale, destination);
        TensorPrimitives.MultiplyAdd(destination, weight, bias, destination);
    }

    public void Reset() => _buffers.Reset();

    public void Dispose()
    {
        _buffers.Dispose();
        _scratch?.Dispose();
    }
}
