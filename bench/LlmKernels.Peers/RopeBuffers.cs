namespace LlmKernels.Peers;

/// <summary>
/// The fused qkv buffer of a peer that rotates it in place (LlmKernels, naive C#, TensorPrimitives),
/// in the element type it runs, and a pristine copy that <see cref="Reset"/> restores.
/// </summary>
public sealed unsafe class RopeBuffers : IDisposable
{
    public RopeBuffers(RopeInputs inputs, BenchDtype dtype)
    {
        Tokens = inputs.Case.Tokens;
        Dtype = dtype;
        Initial = Elements.ToBuffer(inputs.Qkv.As<float>(), Tokens * RopeCase.TokenStride, dtype);
        Qkv = new NativeBuffer(Initial.Bytes);
        Reset();
    }

    public long Tokens { get; }
    public BenchDtype Dtype { get; }
    public NativeBuffer Qkv { get; }
    public NativeBuffer Initial { get; }

    public void Reset() => Buffer.MemoryCopy(Initial.Pointer, Qkv.Pointer, Qkv.Bytes, Qkv.Bytes);

    public void Dispose()
    {
        Qkv.Dispose();
        Initial.Dispose();
    }
}
