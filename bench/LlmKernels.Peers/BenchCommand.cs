using System.Reflection;
using System.Runtime.InteropServices;
using LlmKernels.Interop;

namespace LlmKernels.Peers;

/// <summary>
/// `llmk bench [--quick] [--json FILE] [--threads N] [--filter FAMILY]`: this machine's ceilings,
/// then every case of <see cref="BenchFamilies"/> (RMSNorm, LayerNorm, SwiGLU, RoPE, attention, MoE gating, MoE permute and combine; f32 and
/// bf16) in GB/s (GFLOP/s for the attention prefill), as a fraction of the copy, read or FMA ceiling,
/// and as ratios to every peer, all measured in this
/// process with one thread count; then the managed call's overhead over the raw P/Invoke.
/// </summary>
public static class BenchCommand
{
    public static int Run(string[] args, TextWriter output)
    {
        var options = BenchOptions.Parse(args, out string error);
        if (options is null)
        {
            output.WriteLine($"llmk bench: {error}");
            output.WriteLine(BenchOptions.Usage);
            return 2;
        }

        DateTime started = DateTime.UtcNow;
        CpuContext context;
        try
        {
            context = new CpuContext(new CpuContextOptions { ThreadCount = options.Threads });
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or TypeInitializationException or InvalidOperationException or NotSupportedException or LlmKernelsException)
        {
            output.WriteLine($"llmk bench: LlmKernels cannot run here: {e.Message}");
            return 1;
        }

        using (context)
        {
            string isa = context.Isa.ToString().ToLowerInvariant();
            var versions = Versions(context.Isa);
            double? loadStart = MachineInfo.LoadAverage();
            output.WriteLine($"llmk bench{(options.Quick ? " --quick" : "")}: {MachineInfo.CpuName() ?? "unknown CPU"}, {options.Threads} threads");
            WriteLoad(output, "load average at start", loadStart, warn: true);
            foreach (var (name, version) in versions)
                output.WriteLine($"  {name,-24} {version}");
            output.WriteLine();

            long? lastLevelCache = MachineInfo.LastLevelCacheBytes();
            // One probe for the run's ceilings and for the copy ceiling re-measured next to each cold case.
            using var probe = new CopyProbe(options.Threads, Ceilings.BufferBytesFor(lastLevelCache));
            var ceilings = Ceilings.Measure(probe, options.CeilingRepetitions);
            var cases = BenchFamilies.AllCases(options.Quick).Where(options.Includes).ToList();
            // Built only when a DRAM-class case runs: it holds twice the last-level cache.
            using var flush = !options.Warm && cases.Any(BenchMeasurement.IsCold) ? new CacheFlush(options.Threads, CacheFlush.BytesFor(lastLevelCache)) : null;
            var table = new BenchTable(output, ceilings);
            table.WriteCeilings(isa, flush);
            table.WriteHeader();

            var rows = new List<BenchRow>();
            foreach (var @case in cases)
            {
                var row = BenchMeasurement.MeasureRow(@case, options.PeersFor(@case), context, options.Threads, options.Timing, flush,
                    options.ColdTiming, probe, options.CeilingRepetitions <= 3 ? 2 : 3);
                rows.Add(row);
                table.WriteRow(row);
                output.Flush();
            }

            CallOverheadResult? overhead = null;
            var rmsNorm = rows.Where(r => r.Case is RmsNormCase).ToList();
            if (rmsNorm.Count > 0 && rmsNorm.All(r => r.Ours.Status == PeerStatus.Ok))
            {
                overhead = CallOverhead.Measure(context, options.OverheadIterations, options.OverheadSamples);
                table.WriteOverhead(overhead);
            }
            table.WriteFooter(rows);
            double? loadEnd = MachineInfo.LoadAverage();
            output.WriteLine();
            // This run's own threads are part of the load by now: the end value is recorded, not judged.
            WriteLoad(output, "load average at end", loadEnd, warn: false);

            if (options.JsonPath is { } path)
            {
                BenchJson.Write(path, new BenchRun(options, started, isa, versions, ceilings, overhead, rows, loadStart, loadEnd, flush?.Bytes, flush?.Threads));
                output.WriteLine();
                output.WriteLine($"wrote {path}");
            }
            // Peers may be missing on a machine; LlmKernels itself must agree with the reference wherever
            // it runs. A kernel whose entry point this native build lacks (a family not merged yet) is
            // reported as unavailable above, not failed.
            return rows.All(r => r.Ours.Status is PeerStatus.Ok or PeerStatus.Unavailable) ? 0 : 1;
        }
    }

    private static void WriteLoad(TextWriter output, string label, double? load, bool warn)
    {
        if (load is not double l)
            return;
        string warning = warn && l > Environment.ProcessorCount * 0.5
            ? $" (other work competes for the {Environment.ProcessorCount} cores: compare ratios within this run only)"
            : "";
        output.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"  {label}: {l:F2}{warning}"));
    }

    /// <summary>What was measured, for the header and the JSON: a peer that cannot load says why here.</summary>
    public static unsafe IReadOnlyList<(string Name, string? Version)> Versions(CpuIsa isa)
    {
        string? Try(Func<string?> get)
        {
            try { return get(); }
            catch (Exception e) { return $"unavailable: {e.Message.Split('\n')[0]}"; }
        }
        return
        [
            ("llmkernels", Try(() => Marshal.PtrToStringUTF8((nint)NativeMethods.Version()))),
            ("ggml", Try(() => GgmlLibrary.TryGet(isa, out string reason) is { } ggml
                ? $"{GgmlLibrary.PackageId} {GgmlLibrary.PackageVersion} ({ggml.Directory})"
                : $"unavailable: {reason}")),
            ("onnxruntime", Try(() => $"Microsoft.ML.OnnxRuntime {OrtModel.Version} (CPU EP)")),
            ("system.numerics.tensors", Try(() => typeof(System.Numerics.Tensors.TensorPrimitives).Assembly
                .GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0])),
        ];
    }
}
