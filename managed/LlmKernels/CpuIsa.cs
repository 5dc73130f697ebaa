namespace LlmKernels;

/// <summary>Instruction-set levels of the CPU backend (<c>lk_isa</c>).</summary>
public enum CpuIsa
{
    /// <summary>The best level this CPU runs, unless the <c>LLMK_ISA</c> environment variable names one.</summary>
    Auto = 0,
    /// <summary>Portable C: the reference definitions.</summary>
    Scalar = 1,
    /// <summary>AVX2 + FMA + F16C.</summary>
    Avx2 = 2,
    /// <summary>AVX-512 F, BW, DQ and VL.</summary>
    Avx512 = 3,
}
