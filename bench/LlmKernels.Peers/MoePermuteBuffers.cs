namespace LlmKernels.Peers;

/// <summary>
/// The tensors of a MoE permute or combine peer that works on its own memory (LlmKernels, the naive loops), in the
/// element type it runs: the rows it reads (<see cref="MoePermuteInputs.Source"/> converted), the rows it writes,
/// the plan's index it follows as int32 (permute: <c>sorted_slots</c>, combine: <c>slot_rows</c>, from the
/// <paramref name="plan"/> the peer was given or built) and, for combine, its copy of the f32 weights.
/// </summary>
public sealed unsafe class MoePermuteBuffers : IDisposable
{
    public MoePermuteBuffers(MoePermuteInputs inputs, BenchDtype dtype, MoeRoutingPlan plan)
    {
        var c = inputs.Case;
        Dtype = dtype;
        Source = Elements.ToBuffer(inputs.Source.As<float>(), inputs.SourceRows * c.Hidden, dtype);
        Output = new NativeBuffer(inputs.OutputRows * c.Hidden * dtype.Size());
        Output.Touch();
        int[] index = c.Combine ? plan.SlotRows : plan.SortedSlots;
        Index = new NativeBuffer(index.Length * sizeof(int));
        index.CopyTo(Index.AsSpan<int>());
        if (c.Combine)
            Weights = Elements.ToBuffer(inputs.Weights.As<float>(), c.Rows, BenchDtype.F32);
    }

    public BenchDtype Dtype { get; }
    public NativeBuffer Source { get; }
    public NativeBuffer Output { get; }

    /// <summary>int32: the slot of each output row (permute), or each slot's row of <see cref="Source"/> (combine).</summary>
    public NativeBuffer Index { get; }

    /// <summary>[tokens, k] f32 for combine; null for permute.</summary>
    public NativeBuffer? Weights { get; }

    public void Dispose()
    {
        Source.Dispose();
        Output.Dispose();
        Index.Dispose();
        Weights?.Dispose();
    }
}
