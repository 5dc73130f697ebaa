using System.Diagnostics;
using System.Runtime.InteropServices;

namespace LlmKernels.Cli;

/// <summary>
/// <c>llmk demo</c>: the norm step of a Llama-3-8B decoder layer (hidden 4096, bf16 activations,
/// f32 norm weight) for a 512-token prefill and a 1-token decode step: residual add fused with
/// RMSNorm, as a .NET host would call it. Prints what ran where and how fast. Later kernels
/// (RoPE, attention, SwiGLU) join this layer as they land.
/// </summary>
internal static unsafe class DemoCommand
{
    private const int Hidden = 4096;

    public static int Run(TextWriter output)
    {
        var context = CpuContext.Default;
        output.WriteLine($"LlmKernels demo: Llama-3-8B layer norm step (hidden {Hidden}, bf16 activations, f32 weight, eps 1e-5)");
        output.WriteLine($"running on the CPU: {context.Isa.ToString().ToLowerInvariant()} kernels, {context.ThreadCount} threads");
        foreach (int tokens in new[] { 512, 1 })
            RunStep(output, context, tokens);
        return 0;
    }

    private static void RunStep(TextWriter output, CpuContext context, int tokens)
    {
        int n = tokens * Hidden;
        var random = new Random(42);
        BFloat16[] x = new BFloat16[n], residual = new BFloat16[n], y = new BFloat16[n];
        float[] weight = new float[Hidden];
        for (int i = 0; i < n; i++)
        {
            x[i] = (BFloat16)(random.NextSingle() - 0.5f);
            residual[i] = (BFloat16)(random.NextSingle() * 2 - 1);
        }
        for (int i = 0; i < Hidden; i++)
            weight[i] = 0.8f + 0.4f * random.NextSingle();

        // Residual stream after the attention block, then the MLP's input norm.
        Kernels.FusedAddRmsNorm<BFloat16>(x, residual, weight, y, 1e-5f, context: context);
        double rms = 0;
        for (int i = 0; i < Hidden; i++)
            rms += (double)(float)y[i] / weight[i] * ((float)y[i] / weight[i]);
        rms = Math.Sqrt(rms / Hidden);

        int iterations = tokens == 1 ? 20000 : 200;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < iterations; i++)
            Kernels.FusedAddRmsNorm<BFloat16>(x, residual, weight, y, 1e-5f, context: context);
        double seconds = clock.Elapsed.TotalSeconds / iterations;
        double bytes = 4.0 * n * Marshal.SizeOf<BFloat16>() + Hidden * sizeof(float);
        output.WriteLine($"  {(tokens == 1 ? "decode " : "prefill"),-7} [{tokens,4}, {Hidden}] fused_add_rms_norm  " +
                         $"{seconds * 1e6,9:F2} us/call  {bytes / seconds / 1e9,6:F1} GB/s  (row 0 rms of y/w = {rms:F4}, expected 1)");
    }
}
