namespace LlmKernels.Peers;

/// <summary>
/// One attention measurement, Llama 3 8B's geometry (32 query heads, 8 kv heads, head_dim 128,
/// scale 1/sqrt(128)):
/// <list type="bullet">
/// <item><c>attention_prefill</c>: one causal sequence of <paramref name="Context"/> tokens, q, k, v
/// and out contiguous <c>[tokens, heads, head_dim]</c> in <paramref name="Dtype"/>; compute-bound,
/// measured in GFLOP/s against the machine's FMA peak.</item>
/// <item><c>attention_decode</c>: <paramref name="Batch"/> sequences of <paramref name="Context"/>
/// keys, one query token each (the last position), keys and values in a paged bf16 cache (vLLM's
/// flash layout <c>[num_blocks, block_size, num_kv_heads, head_dim]</c>, block size 16, a shuffled
/// block table); DRAM-bound, measured in GB/s of K and V read against the read ceiling.</item>
/// </list>
/// </summary>
public sealed record AttentionCase(BenchDtype Dtype, bool Decode, long Batch, long Context) : IBenchCase
{
    public const long QHeads = 32;
    public const long KvHeads = 8;
    public const long HeadDim = 128;
    public const int BlockSize = 16;

    /// <summary>1/sqrt(head_dim), what every peer is given explicitly.</summary>
    public static readonly float Scale = 1f / MathF.Sqrt(HeadDim);

    public string Family => "attention";

    public string Kernel => Decode ? "attention_decode" : "attention_prefill";

    /// <summary>Query tokens per sequence: the whole prompt, or one decode token.</summary>
    public long QueryTokens => Decode ? 1 : Context;

    /// <summary>Query (and output) tokens over the batch.</summary>
    public long TotalQueries => Batch * QueryTokens;

    /// <summary>[batch, query tokens, keys per sequence, q heads, kv heads, head_dim].</summary>
    public IReadOnlyList<long> Shape => [Batch, QueryTokens, Context, QHeads, KvHeads, HeadDim];

    public string ShapeText => Decode ? $"{Batch}x1x{Context}" : $"{Context} causal";

    /// <summary>No TensorPrimitives composition: attention is not a chain of span operations.</summary>
    public IReadOnlyList<string> Peers { get; } = [PeerNames.Ggml, PeerNames.OnnxRuntime, PeerNames.Naive];

    /// <summary>
    /// The element type of the keys and values each peer reads: ggml's fast flash-attention path
    /// takes f16 K/V (its q and out are f32); ONNX Runtime's CPU GroupQueryAttention has float and
    /// MLFloat16 kernels only, so a bf16 row runs it in f16 (same bytes). LlmKernels and the naive
    /// loops run the case's type.
    /// </summary>
    public BenchDtype DtypeFor(string peer) => peer switch
    {
        PeerNames.Ggml => BenchDtype.F16,
        PeerNames.OnnxRuntime => Dtype == BenchDtype.F32 ? BenchDtype.F32 : BenchDtype.F16,
        _ => Dtype,
    };

    /// <summary>Elements of K (and of V) over the batch.</summary>
    public long KvElements => Batch * Context * KvHeads * HeadDim;

    /// <summary>Elements of q (and of out) over the batch.</summary>
    public long QueryElements => TotalQueries * QHeads * HeadDim;

    /// <summary>
    /// Decode: the bytes of K and V read, at the type the peer keeps them in (the metric; q
    /// and out are 0.1 % of it). Prefill: q, k, v read and out written, plus ONNX Runtime's
    /// present_key and present_value outputs; ggml reads q and writes out in f32. Prefill's
    /// metric is GFLOP/s: its bytes are informational.
    /// </summary>
    public long BytesFor(string peer)
    {
        int kv = DtypeFor(peer).Size();
        if (Decode)
            return 2 * KvElements * kv;
        int q = peer == PeerNames.Ggml ? sizeof(float) : kv;
        long bytes = 2 * QueryElements * q + 2 * KvElements * kv;
        return peer == PeerNames.OnnxRuntime ? bytes + 2 * KvElements * kv : bytes;
    }

    /// <summary>
    /// Prefill: 4 * Sq * Sk * D * H / 2 (two GEMMs of 2 FLOPs per multiply-add, half the square
    /// under the causal mask), FlashAttention's convention. Decode is DRAM-bound: no FLOP metric.
    /// </summary>
    public long? Flops => Decode ? null : 4 * Context * Context * HeadDim * QHeads / 2;

    /// <summary>
    /// The naive loops run a slice of the call (a full one would take about a minute): query head 0 of a
    /// prefill (1/32 of the FLOPs: every head does the same causal work), sequence 0 of a decode (1/8 of
    /// the K and V bytes, every head).
    /// </summary>
    public double WorkFractionFor(string peer) => peer != PeerNames.Naive ? 1 : Decode ? 1.0 / Batch : 1.0 / QHeads;

    public BenchCeiling Ceiling => Decode ? BenchCeiling.Read : BenchCeiling.Fma;

    public IBenchWorkload Prepare() => AttentionInputs.Create(this);

    /// <summary>The bar: a 2048-token causal prefill in f32 and bf16; decode of 8 sequences at 4096 and 32768 keys, bf16 cache.</summary>
    public static IEnumerable<AttentionCase> Cases(bool quick) =>
        (from dtype in new[] { BenchDtype.F32, BenchDtype.Bf16 }
         select new AttentionCase(dtype, Decode: false, Batch: 1, Context: 2048))
        .Concat(from context in new long[] { 4096, 32768 }
                select new AttentionCase(BenchDtype.Bf16, Decode: true, Batch: 8, Context: context));
}
