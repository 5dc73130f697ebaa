namespace LlmKernels.Peers;

/// <summary>Which of the machine's ceilings a case is a fraction of.</summary>
public enum BenchCeiling
{
    /// <summary>The copy ceiling (read + write bytes): kernels that read and write streams.</summary>
    Copy,
    /// <summary>The read ceiling: kernels that only read a large stream (attention decode over the KV cache).</summary>
    Read,
    /// <summary>The FMA peak (the best of the AVX2 and AVX-512 probes): compute-bound kernels (attention prefill).</summary>
    Fma,
}

public static class BenchCeilingExtensions
{
    public static string Name(this BenchCeiling ceiling) => ceiling switch
    {
        BenchCeiling.Copy => "copy",
        BenchCeiling.Read => "read",
        _ => "fma",
    };
}
