using System.Diagnostics;
using System.Runtime.CompilerServices;
using LlmKernels.Interop;

namespace LlmKernels.Peers;

/// <summary>What one managed call costs on top of the native call it makes.</summary>
/// <param name="NativeSeconds">The raw P/Invoke with the params struct filled per call, as a caller of the C ABI does.</param>
/// <param name="NativePreparedSeconds">The raw P/Invoke with one params struct prepared before the loop: a floor no real caller sees.</param>
public sealed record CallOverheadResult(long Rows, long Hidden, double ManagedSeconds, double NativeSeconds, double NativePreparedSeconds)
{
    /// <summary>Managed time / native time: 1.0 means the safe API is free.</summary>
    public double Ratio => ManagedSeconds / NativeSeconds;
}

/// <summary>
/// The [1, 4096] overhead check: Kernels.RmsNorm (span checks, context resolution, the SafeHandle
/// add-ref) against the generated lk_rms_norm P/Invoke called the way a user of the C ABI calls
/// it — the params struct filled from the current pointers on each call — and, as a floor, with
/// one struct prepared before the loop. All run the same kernel on the same buffers.
/// </summary>
/// <remarks>
/// At [1, 4096] f32, x, y and the weight are 3 x 16 KiB: exactly a 48 KiB L1. Any line the caller
/// touches between calls then evicts input lines in a full set, so even a minimal wrapper pays a
/// few L2 refills per call (measured here: +60 ns at 4096, +10 ns at 3072). The prepared-once
/// floor touches nothing; the per-call native loop is the honest baseline for a wrapper.
/// </remarks>
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

        // Kernels.RmsNorm starts as tier-0 code: call it until tiered compilation has had time to
        // install the optimised version (it compiles in the background after ~100 ms of calls).
        var warmUp = Stopwatch.StartNew();
        while (warmUp.ElapsedMilliseconds < 400)
            ManagedLoop(x, w, y, context, 1000);
        Thread.Sleep(100);

        double managed = double.MaxValue, native = double.MaxValue, prepared = double.MaxValue;
        // Interleaved samples, so that a slow patch of the machine hits every side alike.
        for (int s = 0; s < samples + 1; s++)
        {
            double m = ManagedLoop(x, w, y, context, iterations);
            double n = NativeLoop(handle, x, w, y, iterations);
            double p = NativePreparedLoop(handle, &parameters, iterations);
            if (s > 0) // the first round is warm-up
            {
                managed = Math.Min(managed, m);
                native = Math.Min(native, n);
                prepared = Math.Min(prepared, p);
            }
        }
        GC.KeepAlive(context);
        return new CallOverheadResult(1, hidden, managed, native, prepared);
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
    private static double NativeLoop(nint handle, ReadOnlySpan<float> x, ReadOnlySpan<float> w, Span<float> y, int iterations)
    {
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < iterations; i++)
        {
            fixed (float* xp = x)
            fixed (float* wp = w)
            fixed (float* yp = y)
            {
                var parameters = new RmsNormParams
                {
                    X = xp,
                    Y = yp,
                    Weight = wp,
                    Rows = 1,
                    Hidden = w.Length,
                    Eps = RmsNormCase.Epsilon,
                    Dtype = Dtype.F32,
                    WeightDtype = Dtype.F32,
                };
                Status status = NativeMethods.RmsNorm(handle, &parameters);
                if (status != Status.Ok)
                    throw new InvalidOperationException($"lk_rms_norm returned {status}");
            }
        }
        return Stopwatch.GetElapsedTime(t0).TotalSeconds / iterations;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static double NativePreparedLoop(nint handle, RmsNormParams* parameters, int iterations)
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
