namespace LlmKernels.Peers;

/// <summary>Every case `llmk bench` runs, family by family, in table order.</summary>
public static class BenchFamilies
{
    public static IReadOnlyList<string> Names { get; } = ["rms_norm", "layer_norm", "swiglu", "rope", "attention", "moe_gating", "moe_permute"];

    /// <summary>
    /// The full run measures every shape of every family; <c>--quick</c> keeps the shapes of the
    /// issue's bar (the DRAM-resident ones) and one cache-resident decode shape per family, so the
    /// whole run stays near a minute on a 2-core machine. Each kernel's largest shape runs first:
    /// its long calls bring every managed peer's code (TensorPrimitives' generic kernels above all)
    /// to its optimised tier, which the sub-millisecond decode calls alone may not reach within
    /// their budget on a busy machine (measured: TensorPrimitives' SwiGLU on one token, 1.7 GB/s at
    /// tier 0 against 12 GB/s).
    /// </summary>
    public static IEnumerable<IBenchCase> AllCases(bool quick) =>
        RmsNormCase.Cases(quick).Cast<IBenchCase>()
            .Concat(LayerNormCase.Cases(quick))
            .Concat(SwiGluCase.Cases(quick))
            .Concat(RopeCase.Cases(quick))
            .Concat(AttentionCase.Cases(quick))
            .Concat(MoeGatingCase.Cases(quick))
            .Concat(MoePermuteCase.Cases(quick));
}
