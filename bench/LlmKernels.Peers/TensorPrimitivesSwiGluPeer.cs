using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace LlmKernels.Peers;

/// <summary>
/// SwiGLU composed from TensorPrimitives, per token row: <c>Sigmoid(gate)</c>, then <c>Multiply</c> by
/// the gate (silu) and <c>Multiply</c> by up (System.Numerics.Tensors 10 has no SiLU). Single-threaded
/// by nature. bf16 rows are widened into f32 row scratch and the result narrowed back with
/// <see cref="Bf16Rows"/>, since TensorPrimitives has no bfloat16.
/// </summary>
public sealed unsafe class TensorPrimitivesSwiGluPeer : ISwiGluPeer
{
    private readonly SwiGluBuffers _buffers;
    private readonly NativeBuffer? _scratch; // bf16: gate, up, out rows (f32)

    public TensorPrimitivesSwiGluPeer(SwiGluInputs inputs, BenchDtype dtype)
    {
        if (dtype == BenchDtype.F16)
            throw new NotSupportedException("the TensorPrimitives peer runs f32 and bf16");
        _buffers = new SwiGluBuffers(inputs, dtype);
        if (dtype == BenchDtype.Bf16)
            _scratch = new NativeBuffer(3 * inputs.Case.D * sizeof(float));
    }

    public string Name => PeerNames.TensorPrimitives;
    public BenchDtype Dtype => _buffers.Dtype;
    public int Threads => 1;
    public void* Out => _buffers.Out.Pointer;

    // Large shapes run only a handful of calls: optimise now rather than time tier-0 code.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Run()
    {
        long d = _buffers.D;
        bool split = _buffers.Up is not null;
        long gateStride = split ? d : 2 * d;
        int size = Dtype.Size();
        byte* x = _buffers.X.Pointer, out_ = _buffers.Out.Pointer;
        byte* upBase = split ? _buffers.Up!.Pointer : x + d * size;
        for (long t = 0; t < _buffers.Tokens; t++)
        {
            void* gate = x + t * gateStride * size, up = upBase + t * gateStride * size, output = out_ + t * d * size;
            if (Dtype == BenchDtype.F32)
            {
                SwiGlu(new ReadOnlySpan<float>(gate, (int)d), new ReadOnlySpan<float>(up, (int)d), new Span<float>(output, (int)d));
            }
            else
            {
                float* g = _scratch!.As<float>(), u = g + d, o = u + d;
                Bf16Rows.Widen((ushort*)gate, g, d);
                Bf16Rows.Widen((ushort*)up, u, d);
                SwiGlu(new ReadOnlySpan<float>(g, (int)d), new ReadOnlySpan<float>(u, (int)d), new Span<float>(o, (int)d));
                Bf16Rows.Narrow(o, (ushort*)output, d);
            }
        }
    }

    private static void SwiGlu(ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> destination)
    {
        TensorPrimitives.Sigmoid(gate, destination);
        TensorPrimitives.Multiply(destination, gate, destination);
        TensorPrimitives.Multiply(destination, up, destination);
    }

    public void Reset() { }

    public void Dispose()
    {
        _buffers.Dispose();
        _scratch?.Dispose();
    }
}
