using System.Text.Json;

namespace LlmKernels.Peers;

/// <summary>
/// `llmk bench --json FILE`: one document per run, for comparing machines. Each case gives one
/// record for LlmKernels alone (peer null) and one per peer, each record self-contained (our
/// seconds and the peer's side by side), with the schema of bench/README.md.
/// </summary>
public static class BenchJson
{
    public static void Write(string path, BenchRun run)
    {
        using var stream = File.Create(path);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteString("tool", "llmk bench");
        json.WriteNumber("schema", 5);
        json.WriteString("utc", run.StartedUtc.ToString("O"));
        json.WriteBoolean("quick", run.Options.Quick);

        json.WriteStartObject("machine");
        json.WriteString("cpu", MachineInfo.CpuName());
        json.WriteNumber("logical_cores", Environment.ProcessorCount);
        json.WriteString("os", MachineInfo.Os);
        json.WriteString("runtime", System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription);
        WriteNullable(json, "load_average_start", run.LoadAverageStart);
        WriteNullable(json, "load_average_end", run.LoadAverageEnd);
        json.WriteEndObject();

        json.WriteStartObject("versions");
        foreach (var (name, version) in run.Versions)
            json.WriteString(name, version);
        json.WriteEndObject();

        var c = run.Ceilings;
        json.WriteStartObject("ceilings");
        json.WriteNumber("threads", c.Threads);
        json.WriteNumber("buffer_bytes", c.BufferBytes);
        json.WriteNumber("copy_gbps", c.CopyGBps);
        json.WriteNumber("copy_plain_gbps", c.CopyPlainGBps);
        WriteNullable(json, "copy_streaming_gbps", c.CopyStreamingGBps);
        json.WriteNumber("read_gbps", c.ReadGBps);
        WriteNullable(json, "fma_gflops", c.FmaGflops);
        WriteNullable(json, "fma512_gflops", c.Fma512Gflops);
        WriteNullable(json, "fma_peak_gflops", c.FmaPeakGflops);
        json.WriteEndObject();

        json.WriteStartObject("cold");
        json.WriteNumber("min_bytes", BenchMeasurement.ColdMinBytes);
        if (run.FlushBytes is long flushBytes)
            json.WriteNumber("flush_bytes", flushBytes);
        else
            json.WriteNull("flush_bytes");
        if (run.FlushThreads is int flushThreads)
            json.WriteNumber("flush_threads", flushThreads);
        else
            json.WriteNull("flush_threads");
        json.WriteEndObject();

        if (run.Overhead is { } o)
        {
            json.WriteStartObject("call_overhead");
            json.WriteString("kernel", "rms_norm");
            json.WriteString("dtype", "f32");
            WriteShape(json, [o.Rows, o.Hidden]);
            json.WriteNumber("managed_seconds", o.ManagedSeconds);
            json.WriteNumber("native_seconds", o.NativeSeconds);
            json.WriteNumber("native_prepared_seconds", o.NativePreparedSeconds);
            json.WriteNumber("ratio", o.Ratio);
            json.WriteEndObject();
        }

        json.WriteStartArray("records");
        foreach (var row in run.Rows)
        {
            WriteRecord(json, run, row, null);
            foreach (var peer in row.Peers)
                WriteRecord(json, run, row, peer);
        }
        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void WriteRecord(Utf8JsonWriter json, BenchRun run, BenchRow row, PeerResult? peer)
    {
        var c = row.Case;
        json.WriteStartObject();
        json.WriteString("family", c.Family);
        json.WriteString("kernel", c.Kernel);
        json.WriteString("dtype", c.Dtype.Name());
        WriteShape(json, c.Shape);
        json.WriteString("isa", run.Isa);
        json.WriteString("timing", row.Timing);
        json.WriteNumber("threads", row.Ours.Threads);
        WriteNullable(json, "seconds", row.Ours.Seconds);
        json.WriteNumber("bytes", row.Ours.Bytes);
        WriteNullable(json, "gbps", row.Ours.GBps);
        // Schema 5: compute-bound rows (flops non-null) carry gflops and a ceiling in GFLOP/s (the FMA peak);
        // ceiling names which ceiling ceiling_value and fraction are against. The GB/s fields keep their schema-4 meaning
        // for copy rows; read rows' ceiling_gbps is the read ceiling.
        json.WriteString("ceiling", c.Ceiling.Name());
        WriteNullable(json, "ceiling_value", row.Ceiling(run.Ceilings));
        WriteNullable(json, "run_ceiling_value", row.RunCeiling(run.Ceilings));
        WriteNullable(json, "fraction", row.Fraction(run.Ceilings));
        if (c.Ceiling == BenchCeiling.Fma)
        {
            json.WriteNull("ceiling_gbps");
        }
        else
        {
            json.WriteNumber("ceiling_gbps", row.Ceiling(run.Ceilings));
        }
        json.WriteNumber("run_ceiling_gbps", run.Ceilings.CopyGBps);
        if (c.Flops is long flops)
            json.WriteNumber("flops", flops);
        else
            json.WriteNull("flops");
        WriteNullable(json, "gflops", row.Ours.GFlops);
        json.WriteString("status", row.Ours.StatusText);
        WriteNullable(json, "max_error", row.Ours.MaxError);
        if (peer is null)
        {
            json.WriteNull("peer");
            json.WriteNull("peer_seconds");
        }
        else
        {
            json.WriteString("peer", peer.Peer);
            WriteNullable(json, "peer_seconds", peer.Seconds);
            json.WriteString("peer_dtype", peer.Dtype.Name());
            json.WriteNumber("peer_threads", peer.Threads);
            json.WriteNumber("peer_bytes", peer.Bytes);
            WriteNullable(json, "peer_gbps", peer.GBps);
            WriteNullable(json, "peer_gflops", peer.GFlops);
            json.WriteNumber("peer_work_fraction", peer.WorkFraction);
            WriteNullable(json, "ratio", BenchRow.Ratio(row.Ours, peer));
            json.WriteString("peer_status", peer.StatusText);
            WriteNullable(json, "peer_max_error", peer.MaxError);
            if (peer.Detail.Length > 0)
                json.WriteString("peer_detail", peer.Detail);
        }
        json.WriteEndObject();
    }

    private static void WriteShape(Utf8JsonWriter json, IReadOnlyList<long> shape)
    {
        json.WriteStartArray("shape");
        foreach (long dimension in shape)
            json.WriteNumberValue(dimension);
        json.WriteEndArray();
    }

    private static void WriteNullable(Utf8JsonWriter json, string name, double? value)
    {
        if (value is double v && double.IsFinite(v))
            json.WriteNumber(name, v);
        else
            json.WriteNull(name);
    }
}
