namespace LlmKernels.Peers;

/// <summary>
/// One RMSNorm measurement: which form, which element type, which shape. Knows its minimal memory
/// traffic, the number every GB/s figure in the benchmarks is computed from.
/// </summary>
public sealed record RmsNormCase(bool Fused, BenchDtype Dtype, long Rows, long Hidden) : IBenchCase
{
    /// <summary>Epsilon of every benchmark call (Llama's).</summary>
    public const float Epsilon = 1e-6f;

    public string Family => "rms_norm";

    public string Kernel => Fused ? "fused_add_rms_norm" : "rms_norm";

    public IReadOnlyList<long> Shape => [Rows, Hidden];

    public IReadOnlyList<string> Peers => PeerNames.All;

    public BenchDtype DtypeFor(string peer) => RmsNormPeers.DtypeFor(peer, Dtype);

    public long BytesFor(string peer) => BytesAt(DtypeFor(peer));

    public IBenchWorkload Prepare() => RmsNormInputs.Create(this);

    public long Elements => Rows * Hidden;

    public string ShapeText => $"{Rows}x{Hidden}";

    /// <summary>Minimal traffic when every element is stored as <paramref name="dtype"/>: see <see cref="Bytes"/>.</summary>
    public long BytesAt(BenchDtype dtype)
    {
        // rms_norm reads x and writes y; the fused form reads x and residual and writes residual
        // and y. The weight row is read once, whatever the row count: it stays in cache.
        long tensors = Fused ? 4 : 2;
        return (tensors * Elements + Hidden) * dtype.Size();
    }

    /// <summary>Minimal read + write traffic of one call in this case's element type.</summary>
    public long Bytes => BytesAt(Dtype);

    /// <summary>The shapes every RMSNorm benchmark runs: one decode token, a prefill chunk, a large batch.</summary>
    public static IReadOnlyList<(long Rows, long Hidden)> StandardShapes { get; } =
        [(1, 4096), (512, 4096), (4096, 8192)];

    /// <summary>Both forms, f32 and bf16, every standard shape; a quick run leaves out the prefill chunk [512, 4096].</summary>
    public static IEnumerable<RmsNormCase> Cases(bool quick) =>
        from fused in new[] { false, true }
        from dtype in new[] { BenchDtype.F32, BenchDtype.Bf16 }
        from shape in StandardShapes.Reverse()
        where !quick || shape.Rows != 512
        select new RmsNormCase(fused, dtype, shape.Rows, shape.Hidden);

    public static (long Rows, long Hidden) ParseShape(string text)
    {
        var parts = text.Split('x');
        if (parts.Length != 2 || !long.TryParse(parts[0], out long rows) || !long.TryParse(parts[1], out long hidden) || rows < 1 || hidden < 1)
            throw new ArgumentException($"shape '{text}' is not ROWSxHIDDEN", nameof(text));
        return (rows, hidden);
    }
}
