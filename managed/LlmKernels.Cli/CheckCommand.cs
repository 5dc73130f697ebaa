namespace LlmKernels.Cli;

/// <summary>
/// <c>llmk check</c>: every kernel x ISA x dtype this machine runs against a float64 reference,
/// with FlashAttention's tolerance rule: the kernel's error may be at most twice that of a naive
/// implementation in the same precision (f32 accumulation, one rounding of the output) plus a
/// small atol. Exits non-zero on any failure.
/// </summary>
internal static class CheckCommand
{
    private static readonly int[] s_hiddenSizes = [1, 2, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 255, 256, 257, 4096];

    public static int Run(TextWriter output)
    {
        output.WriteLine($"{"kernel",-20} {"isa",-7} {"dtype",-5} {"cases",5} {"max err",10} {"naive err",10} {"verdict",7}");
        int failures = 0;
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
        {
            using var context = new CpuContext(new CpuContextOptions { Isa = isa });
            failures += CheckType<float>(output, context);
            failures += CheckType<Half>(output, context);
            failures += CheckType<BFloat16>(output, context);
            failures += NormCheck.Run(output, context);
            failures += ActivationCheck.Run(output, context);
            failures += RopeCheck.Run(output, context);
            failures += AttentionCheck.Run(output, context);
        }
        output.WriteLine(failures == 0 ? "all kernels agree with the reference" : $"{failures} kernel x isa x dtype rows FAILED");
        return failures == 0 ? 0 : 1;
    }

    private static int CheckType<T>(TextWriter output, CpuContext context) where T : unmanaged
    {
        int failures = 0;
        foreach (bool fused in new[] { false, true })
        {
            var total = new ErrorStats();
            var random = new Random(1234);
            foreach (int hidden in s_hiddenSizes)
                total.Add(RmsNormReference.Compare<T>(context, random, rows: 3, hidden, fused));
            total.Add(RmsNormReference.Compare<T>(context, random, rows: 64, hidden: 4096, fused)); // split over threads
            bool ok = total.Passes;
            failures += ok ? 0 : 1;
            output.WriteLine($"{(fused ? "fused_add_rms_norm" : "rms_norm"),-20} {context.Isa.ToString().ToLowerInvariant(),-7} " +
                             $"{Elements.Name<T>(),-5} {total.Cases,5} {total.MaxError,10:E2} {total.MaxNaiveError,10:E2} {(ok ? "ok" : "FAIL"),7}");
        }
        return failures;
    }
}

/// <summary>Errors of the kernel and of a naive implementation against float64, over several cases.</summary>
internal sealed class ErrorStats
{
    public int Cases { get; private set; }
    public double MaxError { get; private set; }
    public double MaxNaiveError { get; private set; }
    public bool Passes { get; private set; } = true;

    public void Add(ErrorStats other)
    {
        Cases += other.Cases;
        MaxError = Math.Max(MaxError, other.MaxError);
        MaxNaiveError = Math.Max(MaxNaiveError, other.MaxNaiveError);
        Passes &= other.Passes;
    }

    public static ErrorStats One(double error, double naiveError, double atol) => new()
    {
        Cases = 1,
        MaxError = error,
        MaxNaiveError = naiveError,
        Passes = error <= 2 * naiveError + atol,
    };
}
