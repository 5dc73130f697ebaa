namespace LlmKernels.Peers;

/// <summary>
/// One MoE permute or combine measurement (docs/moe.md, "Routing plan, permute and combine"): <paramref name="Tokens"/>
/// tokens each routed to <paramref name="TopK"/> of <paramref name="Experts"/> experts (<see cref="MoePermuteInputs"/>),
/// rows of <paramref name="Hidden"/> elements of <paramref name="Dtype"/>.
/// <list type="bullet">
/// <item><c>moe_permute</c>: the token rows gathered into the plan's expert order, output row <c>r</c> = input row
/// <c>sorted_slots[r] / k</c>, bit for bit: <c>tokens * k</c> rows out;</item>
/// <item><c>moe_combine</c>: the experts' output rows (in expert order) summed back per token,
/// <c>out[t] = sum_j w[t, j] * expert_output[slot_rows[t * k + j]]</c>, f32 accumulation, rounded once.</item>
/// </list>
/// One family, <c>moe_permute</c>, holds both kernels: the two ends of the same expert layer, with the same routing,
/// shapes and bar. Its name is also the permute kernel's: <c>--filter moe_permute</c> selects both,
/// <c>--filter moe_combine</c> the combine alone.
/// </summary>
public sealed record MoePermuteCase(bool Combine, BenchDtype Dtype, long Tokens, long Experts, int TopK, long Hidden) : IBenchCase
{
    public string Family => "moe_permute";

    public string Kernel => Combine ? "moe_combine" : "moe_permute";

    /// <summary>[tokens, experts, top_k, hidden].</summary>
    public IReadOnlyList<long> Shape => [Tokens, Experts, TopK, Hidden];

    /// <summary>Tokens x hidden, then k of the experts: <c>4096x4096 k2/8</c>.</summary>
    public string ShapeText => $"{Tokens}x{Hidden} k{TopK}/{Experts}";

    /// <summary>The expert-ordered rows: one per slot (no block padding).</summary>
    public long Rows => Tokens * TopK;

    /// <summary>No ONNX Runtime model and no TensorPrimitives composition (a gather of rows is a copy, not a span operation).</summary>
    public IReadOnlyList<string> Peers { get; } = [PeerNames.Ggml, PeerNames.Naive];

    /// <summary>ggml's <c>ggml_get_rows</c> writes f32 whatever it reads, and its combine runs f32: a bf16 row compares with its f32 run.</summary>
    public BenchDtype DtypeFor(string peer) => peer == PeerNames.Ggml ? BenchDtype.F32 : Dtype;

    /// <summary>
    /// Minimal traffic at <paramref name="dtype"/>. Permute: <c>tokens * k</c> rows read and as many written, plus
    /// the plan's int32 row index (<c>sorted_slots</c>; ggml's token index, the same size). Combine: k rows read and one
    /// written per token, plus each slot's f32 weight and int32 row (<c>slot_rows</c>). The indices and weights are
    /// 32 KiB and 64 KiB of 192 to 256 MiB at the standard shape (0.03 %), counted for honesty.
    /// </summary>
    public long BytesAt(BenchDtype dtype) => Combine
        ? (TopK + 1) * Tokens * Hidden * dtype.Size() + Rows * (sizeof(float) + sizeof(int))
        : 2 * Rows * Hidden * dtype.Size() + Rows * sizeof(int);

    public long BytesFor(string peer) => BytesAt(DtypeFor(peer));

    public IBenchWorkload Prepare() => MoePermuteInputs.Create(this);

    /// <summary>Mixtral-8x7B: 8 experts, 2 per token, hidden 4096.</summary>
    public const long StandardExperts = 8;
    public const int StandardTopK = 2;
    public const long StandardHidden = 4096;

    /// <summary>A 4096-token prefill (the bar: DRAM-class, timed cold) and one decode token (latency; not in --quick).</summary>
    public static IReadOnlyList<long> StandardTokens { get; } = [4096, 1];

    /// <summary>Permute then combine, f32 then bf16, the prefill first; <c>--quick</c> keeps the prefill rows only.</summary>
    public static IEnumerable<MoePermuteCase> Cases(bool quick) =>
        from combine in new[] { false, true }
        from dtype in new[] { BenchDtype.F32, BenchDtype.Bf16 }
        from tokens in StandardTokens
        where !quick || tokens > 1
        select new MoePermuteCase(combine, dtype, tokens, StandardExperts, StandardTopK, StandardHidden);
}
