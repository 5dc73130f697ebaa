using System.Globalization;

namespace LlmKernels.Peers;

/// <summary>The text `llmk bench` prints: one line per case as it finishes, then the peers' own GB/s.</summary>
public sealed class BenchTable(TextWriter output, Ceilings ceilings)
{
    private static readonly CultureInfo Invariant = CultureInfo.InvariantCulture;

    public void WriteCeilings(string isa, CacheFlush? flush = null)
    {
        var c = ceilings;
        output.WriteLine(string.Create(Invariant, $"ceilings ({c.Threads} threads, same process, best of several; buffers {c.BufferBytes >> 20} MiB each):"));
        output.WriteLine(string.Create(Invariant, $"  copy     {c.CopyGBps,7:F1} GB/s   (plain {c.CopyPlainGBps:F1}, streaming stores {Format(c.CopyStreamingGBps)}; read + write bytes)"));
        output.WriteLine(string.Create(Invariant, $"  read     {c.ReadGBps,7:F1} GB/s"));
        if (c.FmaGflops is double fma)
            output.WriteLine(string.Create(Invariant, $"  fma      {fma,7:F1} GFLOP/s (AVX2, 10 chains per thread)"));
        if (c.Fma512Gflops is double fma512)
            output.WriteLine(string.Create(Invariant, $"  fma512   {fma512,7:F1} GFLOP/s (AVX-512, 12 chains per thread)"));
        if (c.FmaPeakGflops is double peak)
            output.WriteLine(string.Create(Invariant, $"  fma peak {peak,7:F1} GFLOP/s (the better of the two: what compute-bound rows are a fraction of)"));
        output.WriteLine(string.Create(Invariant, $"LlmKernels isa {isa}; GB/s = minimal read + write traffic / best time (attention decode: K and V read);"));
        output.WriteLine("GFLOP/s (compute-bound rows: attention prefill) = FLOPs / best time; ratios = peer time / LlmKernels time (>1: LlmKernels faster)");
        output.WriteLine(string.Create(Invariant, $"timing: cold = cases moving >= {BenchMeasurement.ColdMinBytes >> 20} MiB, every implementation timed one call per sample after evicting the caches"));
        output.WriteLine(flush is null
            ? "        (no such case in this run); warm = repeated calls, data cache resident between them"
            : string.Create(Invariant, $"        (reading {flush.Bytes >> 20} MiB on {flush.Threads} thread{(flush.Threads == 1 ? "" : "s")}, {flush.Seconds * 1e3:F0} ms, untimed); warm = repeated calls, data cache resident between them"));
        output.WriteLine();
    }

    public void WriteHeader()
    {
        output.WriteLine(string.Create(Invariant, $"{"kernel",-20} {"dtype",-5} {"shape",-15} {"timing",-6} {"us/call",10} {"rate",7} {"unit",-7} {"ceiling",-11} {"of ceil",7}  {"ggml",-11} {"onnxruntime",-11} {"tensorprim",-11} {"naive",-11}"));
        output.WriteLine(new string('-', 146));
    }

    public void WriteRow(BenchRow row)
    {
        var c = row.Case;
        var ours = row.Ours;
        string time = ours.Seconds is double s ? (s * 1e6).ToString("F2", Invariant) : ours.StatusText;
        string rate = ours.Rate is double r ? r.ToString("F1", Invariant) : "-";
        string fraction = row.Fraction(ceilings) is double f && double.IsFinite(f) ? f.ToString("P0", Invariant).Replace(" ", "", StringComparison.Ordinal) : "-";
        string ceiling = $"{c.Ceiling.Name()} {row.Ceiling(ceilings).ToString("F1", Invariant)}";
        output.Write(string.Create(Invariant, $"{c.Kernel,-20} {c.Dtype.Name(),-5} {c.ShapeText,-15} {row.Timing,-6} {time,10} {rate,7} {Unit(c),-7} {ceiling,-11} {fraction,7} "));
        foreach (var name in PeerNames.All)
            output.Write(string.Create(Invariant, $" {Cell(row, name),-11}"));
        output.WriteLine();
        // An unavailable kernel (not in this native build) is explained once, in the footer.
        if (ours.Status is PeerStatus.Mismatch or PeerStatus.Failed)
            output.WriteLine(string.Create(Invariant, $"    llmkernels {ours.StatusText}: {ours.Detail}"));
    }

    private static string Cell(BenchRow row, string name)
    {
        var peer = row.Peers.FirstOrDefault(p => p.Peer == name);
        if (peer is null)
            return "-"; // no such peer for this family (ONNX Runtime has no SwiGLU op)
        if (peer.Status != PeerStatus.Ok)
            return peer.Status == PeerStatus.Unavailable ? "n/a" : peer.StatusText.ToUpperInvariant();
        // Without a LlmKernels time there is no ratio: the peer's own bandwidth is the useful number.
        string ratio = BenchRow.Ratio(row.Ours, peer) is double r ? r.ToString("F2", Invariant) + "x"
            : peer.Rate is double g ? g.ToString("F1", Invariant) + Unit(row.Case) : "-";
        return peer.Dtype == row.Case.Dtype ? ratio : $"{ratio} {peer.Dtype.Name()}";
    }

    /// <summary>Notes on the cells, then every peer's own GB/s and any reason a peer did not run.</summary>
    public void WriteFooter(IReadOnlyList<BenchRow> rows)
    {
        output.WriteLine();
        output.WriteLine("ggml's CPU rms_norm, norm, swiglu and rope run f32 here, so bf16 rows compare with its f32 run (marked f32);");
        output.WriteLine("attention: ggml runs q f32 with K/V f16 (marked f16), ONNX Runtime's GroupQueryAttention f32 or f16 (no bf16 kernel);");
        output.WriteLine("the naive attention loops are timed on a slice (prefill: 1 head of 32; decode: 1 sequence of 8), scaled to the call.");
        output.WriteLine("moe gating: GB/s of logits read + ids and weights written, against the read ceiling; ggml = llama.cpp build_moe_ffn's");
        output.WriteLine("composition (f32; argsort of every row), checked as (id, weight) sets with its exact ties in either order.");
        output.WriteLine("moe permute/combine: ggml = ggml_get_rows (permute), build_moe_ffn's get_rows + mul + view/add tail (combine), f32.");
        output.WriteLine("tensorprim and naive are single-threaded by nature; ggml and onnxruntime use the same thread count as LlmKernels.");
        output.WriteLine("n/a: peer unavailable here; MISMATCH: its result disagreed with the float64 reference and was not timed;");
        output.WriteLine("-: no such peer for the family (ONNX Runtime has no SwiGLU op on the CPU, attention is no TensorPrimitives");
        output.WriteLine("composition), or naive skipped by --quick on a DRAM-resident or compute-bound shape; a peer's GB/s (GFLOP/s)");
        output.WriteLine("instead of a ratio: LlmKernels has no time for that row.");
        output.WriteLine("timing cold: one call per sample from evicted caches, the same for every implementation (\"of copy\" compares");
        output.WriteLine("with DRAM); warm: repeated calls on cache-resident data (\"of copy\" above 100% is cache bandwidth).");
        output.WriteLine("ceiling: what \"of ceil\" is against: copy or read (GB/s), for cold rows re-measured just before and after");
        output.WriteLine("LlmKernels' samples (the better of the two; this host's bandwidth drifts), for warm rows the run's, above;");
        output.WriteLine("fma: the run's FMA peak (GFLOP/s, the better of AVX2 and AVX-512) for compute-bound rows.");
        output.WriteLine();
        output.WriteLine(string.Create(Invariant, $"{"peer GB/s (GFLOP/s: compute-bound rows)",-47} {"llmkernels",11} {"ggml",11} {"onnxruntime",11} {"tensorprim",11} {"naive",11}"));
        foreach (var row in rows)
        {
            output.Write(string.Create(Invariant, $"{row.Case.Kernel + " " + row.Case.Dtype.Name() + " " + row.Case.ShapeText,-47} {Format(row.Ours.Rate),11}"));
            foreach (var name in PeerNames.All)
                output.Write(string.Create(Invariant, $" {Format(row.Peers.FirstOrDefault(p => p.Peer == name)?.Rate),11}"));
            output.WriteLine();
        }
        // One line per reason, naming the kernels it applies to (a missing library hits every row alike).
        var reasons = rows.SelectMany(r => r.Peers.Prepend(r.Ours).Where(p => p.Status != PeerStatus.Ok).Select(p => (Row: r, Peer: p)))
            .GroupBy(x => (x.Peer.Peer, x.Peer.StatusText, x.Peer.Detail))
            .Select(g => $"{g.Key.Peer} {g.Key.StatusText} for {Cases(g.Select(x => x.Row).ToList())}: {g.Key.Detail}")
            .ToList();
        if (reasons.Count > 0)
        {
            output.WriteLine();
            foreach (var reason in reasons)
                output.WriteLine(reason);
        }
        // What a passing check noted (MoE gating: tokens whose experts differ from the reference only by ties).
        var notes = rows.SelectMany(r => r.Peers.Prepend(r.Ours).Where(p => p.Status == PeerStatus.Ok && p.Detail.Length > 0)
                                           .Select(p => $"{p.Peer} ok for {Cases([r])}: {p.Detail}"))
            .ToList();
        if (notes.Count > 0)
        {
            output.WriteLine();
            foreach (var note in notes)
                output.WriteLine(note);
        }
    }

    private static string Cases(IReadOnlyList<BenchRow> rows) => rows.Count == 1
        ? $"{rows[0].Case.Kernel} {rows[0].Case.Dtype.Name()} {rows[0].Case.ShapeText}"
        : $"{rows.Count} cases of {string.Join(", ", rows.Select(r => r.Case.Kernel).Distinct())}";

    public void WriteOverhead(CallOverheadResult overhead)
    {
        output.WriteLine();
        output.WriteLine(string.Create(Invariant,
            $"call overhead, rms_norm f32 [{overhead.Rows}, {overhead.Hidden}]: Kernels.RmsNorm {overhead.ManagedSeconds * 1e9:F0} ns, " +
            $"lk_rms_norm P/Invoke {overhead.NativeSeconds * 1e9:F0} ns (params prepared once: {overhead.NativePreparedSeconds * 1e9:F0} ns), ratio {overhead.Ratio:F3}"));
    }

    /// <summary>The unit of a row's rate: GFLOP/s for a compute-bound case, else GB/s.</summary>
    private static string Unit(IBenchCase @case) => @case.Flops is null ? "GB/s" : "GFLOP/s";

    private static string Format(double? value) => value is double v ? v.ToString("F1", Invariant) : "-";
}
