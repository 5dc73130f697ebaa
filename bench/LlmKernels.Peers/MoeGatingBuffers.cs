namespace LlmKernels.Peers;

/// <summary>
/// The tensors of a MoE gating peer that works on its own memory (LlmKernels, the naive loop): the logits in the
/// element type it runs, its copy of the correction bias (f32, or null), and the outputs, ids int32 and weights f32
/// <c>[tokens, k]</c>.
/// </summary>
public sealed unsafe class MoeGatingBuffers : IDisposable
{
    public MoeGatingBuffers(MoeGatingInputs inputs, BenchDtype dtype)
    {
        var @case = inputs.Case;
        Dtype = dtype;
        Logits = Elements.ToBuffer(inputs.Logits.As<float>(), @case.Tokens * @case.Experts, dtype);
        Bias = inputs.Bias is { } bias ? Elements.ToBuffer(bias.As<float>(), @case.Experts, BenchDtype.F32) : null;
        Ids = new NativeBuffer(@case.Tokens * @case.TopK * sizeof(int));
        Weights = new NativeBuffer(@case.Tokens * @case.TopK * sizeof(float));
        Ids.Touch();
        Weights.Touch();
    }

    public BenchDtype Dtype { get; }
    public NativeBuffer Logits { get; }
    public NativeBuffer? Bias { get; }
    public NativeBuffer Ids { get; }
    public NativeBuffer Weights { get; }

    public void Dispose()
    {
        Logits.Dispose();
        Bias?.Dispose();
        Ids.Dispose();
        Weights.Dispose();
    }
}
