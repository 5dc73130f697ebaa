using System.Diagnostics;
using System.Runtime.CompilerServices;
using LlmKernels.Interop;

namespace LlmKernels.Peers;

/// <summary>What one managed call costs on top of the native call it makes.</summary>
public sealed record CallOverheadResult(long Rows, long Hidden, double ManagedSeconds, double NativeSeconds)
{
    /// <summary>Managed time / native time: 1.0 means the safe API is free.</summary>
    public double Ratio => ManagedSeconds / NativeSeconds;
}

/// <summary>
/// The [1, 4096] overhead check: Kernels.RmsNorm (span checks, context resolution, the SafeHandle
/// add-ref) against the generated lk_rms_norm P/Invoke called with a params struct prepared once.
/// Both run the same kernel on the same buffers, so the difference is the managed layer.
/// </summary>
public static unsafe class CallOverhead
{
    public static CallOverheadResult Measure(CpuContext context, int iterations, int samples, long hidden = 4096)
    {
        var @case = new RmsNormCase(false, BenchDtype.F32, 1, hidden);
        using var inputs = RmsNormInputs.Create(@case);
        using var buffers = new PeerBuffers(inputs, BenchDtype.F32);
        var x = new ReadOnlySpan<float>(buffers.X.Pointer, (int)hidden);
        var w = new ReadOnlySpan<float>(buffers.Weight.Pointer, (int)hidden);
        var y = new Span<float>(buffers.Y.Pointer, (int)hidden);

        var parameters = new RmsNormParams
        {
            X = buffers.X.Pointer,
            Y = buffers.Y.Pointer,
            Weight = buffers.Weight.Pointer,
            Rows = 1,
            Hidden = hidden,
            Eps = RmsNormCase.Epsilon,
            Dtype = Dtype.F32,
            WeightDtype = Dtype.F32,
        };
        nint handle = NativeHandle(context);

        double managed = double.MaxValue, native = double.MaxValue;
        // Interleaved samples, so that a slow patch of the machine hits both sides alike.
        for (int s = 0; s < samples + 1; s++)
        {
            double m = ManagedLoop(x, w, y, context, iterations);
            double n = NativeLoop(handle, &parameters, iterations);
            if (s > 0) // the first round is warm-up
            {
                managed = Math.Min(managed, m);
                native = Math.Min(native, n);
            }
        }
        GC.KeepAlive(context);
        return new CallOverheadResult(1, hidden, managed, native);
    }

    // Both loops are compiled fully optimised at once: each runs only a few times, and tier-0
    // code patched by on-stack replacement would add its own cost to the side it happens to hit.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double ManagedLoop(ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, CpuContext context, int iterations)
    {
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < iterations; i++)
            Kernels.RmsNorm(x, w, y, RmsNormCase.Epsilon, context: context);
        return Stopwatch.GetElapsedTime(t0).TotalSeconds / iterations;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double NativeLoop(nint handle, RmsNormParams* parameters, int iterations)
    {
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < iterations; i++)
        {
            Status status = NativeMethods.RmsNorm(handle, parameters);
            if (status != Status.Ok)
                throw new InvalidOperationException($"lk_rms_norm returned {status}");
        }
        return Stopwatch.GetElapsedTime(t0).TotalSeconds / iterations;
    }

    /// <summary>
    /// The raw lk_cpu_context*: valid while the caller keeps the context alive, which Measure does.
    /// </summary>
    private static nint NativeHandle(CpuContext context)
    {
        using var lease = context.Acquire();
        return lease.Handle;
    }
}
