namespace LlmKernels.Peers;

/// <summary>
/// One LayerNorm measurement (<c>y = (v - mean(v)) / sqrt(var(v) + eps) * w + b</c>, biased
/// variance as torch), plain (v = x) or with the pre-norm residual add (<c>residual += x;
/// v = residual</c>, the sum rounded to the element type and stored). Weight and bias are in the
/// element type of x. <paramref name="Post"/>: post-norm with alpha 1 (<c>y = norm(round(x + residual))</c>,
/// the residual read only; lk_norm's POST form, DeepNorm's with alpha 1).
/// </summary>
public sealed record LayerNormCase(bool Fused, BenchDtype Dtype, long Rows, long Hidden, bool Post = false) : IBenchCase
{
    /// <summary>torch.nn.LayerNorm's default epsilon.</summary>
    public const float Epsilon = 1e-5f;

    public string Family => "layer_norm";

    public string Kernel => Post ? "post_layer_norm" : Fused ? "fused_add_layer_norm" : "layer_norm";

    public long Elements => Rows * Hidden;

    public IReadOnlyList<long> Shape => [Rows, Hidden];

    public string ShapeText => $"{Rows}x{Hidden}";

    public IReadOnlyList<string> Peers => PeerNames.All;

    /// <summary>ggml's CPU norm is f32-only: its bf16 comparison is its f32 run.</summary>
    public BenchDtype DtypeFor(string peer) => peer == PeerNames.Ggml ? BenchDtype.F32 : Dtype;

    /// <summary>
    /// x read and y written (the fused form also reads and writes the residual, post-norm reads
    /// it); weight and bias are read once, whatever the row count.
    /// </summary>
    public long BytesAt(BenchDtype dtype) => ((Fused ? 4 : Post ? 3 : 2) * Elements + 2 * Hidden) * dtype.Size();

    public long BytesFor(string peer) => BytesAt(DtypeFor(peer));

    public IBenchWorkload Prepare() => LayerNormInputs.Create(this);

    /// <summary>One decode token (cache resident, latency) and the DRAM-resident batch of the bar.</summary>
    public static IReadOnlyList<(long Rows, long Hidden)> StandardShapes { get; } = [(1, 4096), (4096, 8192)];

    /// <summary>Plain and pre-norm on every standard shape; post-norm on the DRAM-resident one.</summary>
    public static IEnumerable<LayerNormCase> Cases(bool quick) =>
        (from fused in new[] { false, true }
         from dtype in new[] { BenchDtype.F32, BenchDtype.Bf16 }
         from shape in StandardShapes.Reverse()
         select new LayerNormCase(fused, dtype, shape.Rows, shape.Hidden))
        .Concat(from dtype in new[] { BenchDtype.F32, BenchDtype.Bf16 }
                select new LayerNormCase(false, dtype, 4096, 8192, Post: true));
}
