using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// RMSNorm composed from System.Numerics.Tensors' TensorPrimitives, the vectorised building blocks
/// .NET offers: per row SumOfSquares, then Multiply by the scale and Multiply by the weight (the
/// fused form adds the residual with Add first). Single-threaded by nature: TensorPrimitives runs
/// on the calling thread. bf16 rows go through an f32 row scratch (TensorPrimitives has no
/// bfloat16), widened and narrowed with the vector code in <see cref="Bf16Rows"/>.
/// </summary>
public sealed unsafe class TensorPrimitivesRmsNormPeer : INormPeer
{
    private readonly PeerBuffers _buffers;
    private readonly NativeBuffer? _rowScratch;
    private readonly NativeBuffer? _otherScratch;

    public TensorPrimitivesRmsNormPeer(RmsNormInputs inputs, BenchDtype dtype)
    {
        if (dtype == BenchDtype.F16)
            throw new NotSupportedException("the TensorPrimitives peer runs f32 and bf16");
        _buffers = new PeerBuffers(inputs, dtype);
        if (dtype == BenchDtype.Bf16)
        {
            _rowScratch = new NativeBuffer(inputs.Hidden * sizeof(float) * 2); // row, then weight
            _otherScratch = new NativeBuffer(inputs.Hidden * sizeof(float));
            // The weight is widened once: a user converts it when loading the model, not per call.
            Bf16Rows.Widen(_buffers.Weight.As<ushort>(), WeightF32, inputs.Hidden);
        }
    }

    public string Name => PeerNames.TensorPrimitives;
    public BenchDtype Dtype => _buffers.Dtype;
    public int Threads => 1;
    public void* Y => _buffers.Y.Pointer;
    public void* ResidualOut => _buffers.Residual is { } r ? r.Pointer : null;

    private float* WeightF32 => _rowScratch!.As<float>() + _buffers.Hidden;

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
        for (long row = 0; row < _buffers.Rows; row++)
        {
            long offset = row * hidden;
            var x = new Span<float>(_buffers.X.As<float>() + offset, hidden);
            var y = new Span<float>(_buffers.Y.As<float>() + offset, hidden);
            Span<float> source = x;
            if (_buffers.Residual is { } residualBuffer)
            {
                source = new Span<float>(residualBuffer.As<float>() + offset, hidden);
                TensorPrimitives.Add(source, x, source);
            }
            Normalise(source, w, y);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void RunBf16()
    {
        int hidden = (int)_buffers.Hidden;
        float* row = _rowScratch!.As<float>(), other = _otherScratch!.As<float>();
        var rowSpan = new Span<float>(row, hidden);
        var w = new ReadOnlySpan<float>(WeightF32, hidden);
        for (long r = 0; r < _buffers.Rows; r++)
        {
            long offset = r * hidden;
            ushort* x = _buffers.X.As<ushort>() + offset, y = _buffers.Y.As<ushort>() + offset;
            Bf16Rows.Widen(x, row, hidden);
            if (_buffers.Residual is { } residualBuffer)
            {
                ushort* residual = residualBuffer.As<ushort>() + offset;
                Bf16Rows.Widen(residual, other, hidden);
                TensorPrimitives.Add(rowSpan, new ReadOnlySpan<float>(other, hidden), rowSpan);
                // Store the rounded sum and normalise what was stored, as the ABI specifies.
                Bf16Rows.Narrow(row, residual, hidden);
                Bf16Rows.Widen(residual, row, hidden);
            }
            Normalise(rowSpan, w, rowSpan);
            Bf16Rows.Narrow(row, y, hidden);
        }
    }

    private static void Normalise(ReadOnlySpan<float> source, ReadOnlySpan<float> weight, Span<float> destination)
    {
        float scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(source) / source.Length + RmsNormCase.Epsilon);
        TensorPrimitives.Multiply(source, scale, destination);
        TensorPrimitives.Multiply(destination, weight, destination);
    }

    public void Reset() => _buffers.Reset();

    public void Dispose()
    {
        _buffers.Dispose();
        _rowScratch?.Dispose();
        _otherScratch?.Dispose();
    }
}
