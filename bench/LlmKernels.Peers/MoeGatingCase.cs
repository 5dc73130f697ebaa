namespace LlmKernels.Peers;

/// <summary>
/// One MoE gating measurement: router logits <c>[tokens, experts]</c> in <paramref name="Dtype"/> become each token's
/// <paramref name="TopK"/> expert ids (int32) and f32 weights, in descending weight order, ties to the lower id, by
/// <paramref name="Scheme"/> (docs/moe.md). The bar: 8192 tokens (a prefill chunk) of 256 experts, k = 8, in
/// each scheme, and 64 experts, k = 2, softmax-then-top-k; f32 logits.
/// </summary>
public sealed record MoeGatingCase(MoeGatingScheme Scheme, BenchDtype Dtype, long Tokens, long Experts, int TopK) : IBenchCase
{
    public string Family => "moe_gating";

    public string Kernel => Scheme.Kernel;

    /// <summary>[tokens, experts, top_k]; the scheme (groups, bias, scaling) is the kernel's name.</summary>
    public IReadOnlyList<long> Shape => [Tokens, Experts, TopK];

    public string ShapeText => $"{Tokens}x{Experts} k{TopK}";

    /// <summary>No ONNX Runtime model (its TopK and Softmax ops exist, but not the scheme's composition here) and no TensorPrimitives composition.</summary>
    public IReadOnlyList<string> Peers { get; } = [PeerNames.Ggml, PeerNames.Naive];

    /// <summary>ggml's CPU soft_max and sigmoid take f32 rows: a bf16 row compares with its f32 run.</summary>
    public BenchDtype DtypeFor(string peer) => peer == PeerNames.Ggml ? BenchDtype.F32 : Dtype;

    /// <summary>Ids and weights written: <c>tokens * k</c> of each, int32 and f32.</summary>
    public long OutputBytes => Tokens * TopK * (sizeof(int) + sizeof(float));

    /// <summary>
    /// The logits read (at the type the peer runs) and the ids and weights written, plus the correction bias (f32,
    /// once). ggml's intermediates (the probabilities, the full argsort of every row, the gathers) are its own cost,
    /// not counted.
    /// </summary>
    public long BytesFor(string peer) =>
        Tokens * Experts * DtypeFor(peer).Size() + OutputBytes + (Scheme.Bias ? Experts * sizeof(float) : 0);

    /// <summary>Gating reads a stream and writes 1/16 of it (k = 8 of 256 experts, 8 bytes per pick against 4 per logit): the read ceiling.</summary>
    public BenchCeiling Ceiling => BenchCeiling.Read;

    public IBenchWorkload Prepare() => MoeGatingInputs.Create(this);

    /// <summary>A prefill chunk: vLLM's default max_num_batched_tokens for chunked prefill is 8192.</summary>
    public const long StandardTokens = 8192;

    /// <summary>
    /// [8192, 256, k 8] in each scheme (DeepSeek-V3's 256 routed experts, 8 per token) and [8192, 64, k 2]
    /// softmax-then-top-k; f32 (the bar) then bf16. All are cache-resident (8 MiB of f32 logits) and fast, so
    /// <c>--quick</c> keeps every one.
    /// </summary>
    public static IEnumerable<MoeGatingCase> Cases(bool quick) =>
        from dtype in new[] { BenchDtype.F32, BenchDtype.Bf16 }
        from @case in new[]
        {
            new MoeGatingCase(MoeGatingScheme.SoftmaxTopK, dtype, StandardTokens, 256, 8),
            new MoeGatingCase(MoeGatingScheme.TopKSoftmax, dtype, StandardTokens, 256, 8),
            new MoeGatingCase(MoeGatingScheme.SigmoidGrouped, dtype, StandardTokens, 256, 8),
            new MoeGatingCase(MoeGatingScheme.SoftmaxTopK, dtype, StandardTokens, 64, 2),
        }
        select @case;
}
