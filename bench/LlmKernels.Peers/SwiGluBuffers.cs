namespace LlmKernels.Peers;

/// <summary>
/// The tensors of a SwiGLU peer that works on its own memory (LlmKernels, naive C#,
/// TensorPrimitives), in the element type it runs: packed, X holds [gate | up] rows of 2*d and Up
/// is null; split, X is the gate and Up the up tensor. Out is [tokens, d].
/// </summary>
public sealed unsafe class SwiGluBuffers : IDisposable
{
    public SwiGluBuffers(SwiGluInputs inputs, BenchDtype dtype)
    {
        var @case = inputs.Case;
        Tokens = @case.Tokens;
        D = @case.D;
        Dtype = dtype;
        if (@case.Split)
        {
            X = Elements.ToBuffer(inputs.Gate.As<float>(), @case.Elements, dtype);
            Up = Elements.ToBuffer(inputs.Up.As<float>(), @case.Elements, dtype);
        }
        else
        {
            X = new NativeBuffer(2 * @case.Elements * dtype.Size());
            Pack(inputs, X.Pointer, dtype);
        }
        Out = new NativeBuffer(@case.Elements * dtype.Size());
        Out.Touch();
    }

    public long Tokens { get; }
    public long D { get; }
    public BenchDtype Dtype { get; }
    public NativeBuffer X { get; }
    public NativeBuffer? Up { get; }
    public NativeBuffer Out { get; }

    /// <summary>Writes gate and up as [gate | up] rows of 2*d elements of <paramref name="dtype"/>.</summary>
    public static void Pack(SwiGluInputs inputs, void* destination, BenchDtype dtype)
    {
        long d = inputs.Case.D, size = dtype.Size();
        for (long t = 0; t < inputs.Case.Tokens; t++)
        {
            byte* row = (byte*)destination + 2 * d * t * size;
            Elements.Convert(inputs.Gate.As<float>() + t * d, row, d, dtype);
            Elements.Convert(inputs.Up.As<float>() + t * d, row + d * size, d, dtype);
        }
    }

    public void Dispose()
    {
        X.Dispose();
        Up?.Dispose();
        Out.Dispose();
    }
}
