namespace LlmKernels.Peers;

/// <summary>
/// One RoPE measurement: NeoX pairing (element j with j + rot_dim/2) in place on the q and k heads of
/// a fused qkv buffer, Llama 3 8B's geometry: 32 q heads, 8 kv heads, head_dim 128 rotated in full,
/// rope_theta 500000; tokens [tokens, (32 + 2*8) * 128] apart, v left untouched. A prefill of 4096
/// tokens at positions 0..4095, or one decode token at the cache's last position (4095).
/// <paramref name="Gptj"/>: GPT-J pairing (x[2j], x[2j + 1]) instead, same angles.
/// </summary>
public sealed record RopeCase(BenchDtype Dtype, long Tokens, bool Gptj = false) : IBenchCase
{
    public const long QHeads = 32;
    public const long KvHeads = 8;
    public const long HeadDim = 128;
    public const long RotDim = 128;
    public const long MaxPosition = 4096;
    public const double Base = 500000;

    /// <summary>Elements between tokens in the fused qkv buffer.</summary>
    public const long TokenStride = (QHeads + 2 * KvHeads) * HeadDim;

    /// <summary>Elements each token rotates: its q and k heads, side by side in the fused row.</summary>
    public const long RotatedPerToken = (QHeads + KvHeads) * HeadDim;

    public string Family => "rope";

    public string Kernel => Gptj ? "rope_gptj" : "rope_neox";

    /// <summary>The index in a head of pair <paramref name="j"/>'s first element: j (NeoX) or 2j (GPT-J).</summary>
    public long First(long j) => Gptj ? 2 * j : j;

    /// <summary>The index in a head of pair <paramref name="j"/>'s second element: j + rot_dim/2 (NeoX) or 2j + 1 (GPT-J).</summary>
    public long Second(long j) => Gptj ? 2 * j + 1 : j + RotDim / 2;

    public IReadOnlyList<long> Shape => [Tokens, QHeads, KvHeads, HeadDim];

    public string ShapeText => $"{Tokens}x({QHeads}+{KvHeads})x{HeadDim}";

    public IReadOnlyList<string> Peers => PeerNames.All;

    /// <summary>ggml's CPU rope runs f32 and f16, not bf16: its bf16 comparison is its f32 run.</summary>
    public BenchDtype DtypeFor(string peer) => peer == PeerNames.Ggml ? BenchDtype.F32 : Dtype;

    /// <summary>
    /// q and k read and written, plus each token's position and its cos/sin cache row (rot_dim f32;
    /// ONNX Runtime's cache is in the element type of x, its positions int64). ggml computes its
    /// angles from the positions and reads no cache.
    /// </summary>
    public long BytesFor(string peer)
    {
        int size = DtypeFor(peer).Size();
        long qk = 2 * Tokens * RotatedPerToken * size;
        return peer switch
        {
            PeerNames.Ggml => qk + Tokens * sizeof(int),
            PeerNames.OnnxRuntime => qk + Tokens * (sizeof(long) + RotDim * size),
            _ => qk + Tokens * (sizeof(int) + RotDim * sizeof(float)),
        };
    }

    /// <summary>The position of <paramref name="token"/>: 0..tokens-1 for a prefill, the cache's last row for one decode token.</summary>
    public int Position(long token) => (int)(Tokens == 1 ? MaxPosition - 1 : token);

    /// <summary>inv_freq[j] = base^(-2j / rot_dim), in double.</summary>
    public static double InverseFrequency(long j) => Math.Pow(Base, -2.0 * j / RotDim);

    public IBenchWorkload Prepare() => RopeInputs.Create(this);

    /// <summary>One decode token (latency) and the DRAM-resident prefill of the bar.</summary>
    public static IReadOnlyList<long> StandardTokens { get; } = [1, 4096];

    /// <summary>NeoX on both standard shapes; GPT-J on the DRAM-resident prefill.</summary>
    public static IEnumerable<RopeCase> Cases(bool quick) =>
        (from dtype in new[] { BenchDtype.F32, BenchDtype.Bf16 }
         from tokens in StandardTokens.Reverse()
         select new RopeCase(dtype, tokens))
        .Concat(from dtype in new[] { BenchDtype.F32, BenchDtype.Bf16 }
                select new RopeCase(dtype, 4096, Gptj: true));
}
