using Xunit.Abstractions;

namespace LlmKernels.Tests;

/// <summary>
/// CpuContext: the shared Default, the options it honours, and the threading contract — a context
/// per host thread always works; one context shared by two threads either runs a call correctly or
/// refuses it as busy (InvalidOperationException), never races; Default serialises instead.
/// </summary>
public sealed class ContextTests(ITestOutputHelper output)
{
    // 32 x 4096 is 128 Ki elements: the context splits it over two threads.
    private const int Rows = 32;
    private const int Hidden = 4096;

    private static bool IsaFromEnvironment => Environment.GetEnvironmentVariable("LLMK_ISA") is { Length: > 0 };

    [Fact]
    public void DefaultIsOneSharedContextOverEveryCore()
    {
        CpuContext context = CpuContext.Default;
        Assert.Same(context, CpuContext.Default);
        Assert.True(context.ThreadCount >= 1, $"ThreadCount {context.ThreadCount}");
        Assert.Contains(context.Isa, CpuContext.SupportedIsas);
        if (!IsaFromEnvironment)
            Assert.Equal(CpuContext.SupportedIsas.Max(), context.Isa);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(8)]
    public void ThreadCountIsHonoured(int threads)
    {
        using var context = new CpuContext(new CpuContextOptions { ThreadCount = threads });
        Assert.Equal(threads, context.ThreadCount);
        AssertComputesCorrectly(context, seed: threads);
    }

    [Fact]
    public void ZeroThreadsMeansEveryCore()
    {
        using var context = new CpuContext(new CpuContextOptions { ThreadCount = 0 });
        Assert.True(context.ThreadCount >= 1);
        Assert.Equal(CpuContext.Default.ThreadCount, context.ThreadCount);
    }

    public static TheoryData<CpuIsa> SupportedIsas => new(CpuContext.SupportedIsas);

    [Theory, MemberData(nameof(SupportedIsas))]
    public void ForcedIsaIsReported(CpuIsa isa)
    {
        using var context = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 2 });
        Assert.Equal(isa, context.Isa);
        AssertComputesCorrectly(context, seed: (int)isa);
    }

    [Fact]
    public void AutoPicksTheBestSupportedIsa()
    {
        using var context = new CpuContext(new CpuContextOptions { Isa = CpuIsa.Auto, ThreadCount = 1 });
        Assert.NotEqual(CpuIsa.Auto, context.Isa);
        if (!IsaFromEnvironment)
            Assert.Equal(CpuContext.SupportedIsas.Max(), context.Isa);
    }

    [Fact]
    public void EachHostThreadWithItsOwnContextSucceeds()
    {
        const int hostThreads = 4, iterations = 25;
        var problems = Enumerable.Range(0, hostThreads).Select(i => Problem.Create(seed: 100 + i)).ToArray();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var start = new Barrier(hostThreads);
        var threads = problems.Select((problem, index) => new Thread(() =>
        {
            try
            {
                using var context = new CpuContext(new CpuContextOptions { ThreadCount = 2 });
                float[] y = new float[problem.X.Length];
                start.SignalAndWait();
                for (int i = 0; i < iterations; i++)
                {
                    y.AsSpan().Fill(float.NaN);
                    Kernels.RmsNorm<float>(problem.X, problem.Weight, y, context: context);
                    if (!y.AsSpan().SequenceEqual(problem.Expected))
                        failures.Enqueue($"host thread {index}, iteration {i}: wrong output");
                }
            }
            catch (Exception e)
            {
                failures.Enqueue($"host thread {index}: {e}");
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Empty(failures);
    }

    [Fact]
    public void ASharedContextRefusesConcurrentCallsAsBusyButNeverRaces()
    {
        const int hostThreads = 2, iterations = 300;
        using var shared = new CpuContext(new CpuContextOptions { ThreadCount = 2 });
        var problems = Enumerable.Range(0, hostThreads).Select(i => Problem.Create(seed: 200 + i)).ToArray();
        int succeeded = 0, busy = 0;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var start = new Barrier(hostThreads);
        var threads = problems.Select((problem, index) => new Thread(() =>
        {
            float[] y = new float[problem.X.Length];
            start.SignalAndWait();
            for (int i = 0; i < iterations; i++)
            {
                y.AsSpan().Fill(float.NaN);
                try
                {
                    Kernels.RmsNorm<float>(problem.X, problem.Weight, y, context: shared);
                }
                catch (InvalidOperationException)
                {
                    Interlocked.Increment(ref busy);
                    // A refused call must not have written anything.
                    if (y.Any(v => !float.IsNaN(v)))
                        failures.Enqueue($"host thread {index}, iteration {i}: a busy call wrote to destination");
                    continue;
                }
                catch (Exception e)
                {
                    failures.Enqueue($"host thread {index}, iteration {i}: {e.GetType().Name} is neither success nor busy: {e.Message}");
                    continue;
                }
                Interlocked.Increment(ref succeeded);
                if (!y.AsSpan().SequenceEqual(problem.Expected))
                    failures.Enqueue($"host thread {index}, iteration {i}: wrong output");
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        output.WriteLine($"{succeeded} calls succeeded, {busy} were refused as busy, of {hostThreads * iterations}");
        Assert.Empty(failures);
        Assert.Equal(hostThreads * iterations, succeeded + busy);
        Assert.True(succeeded > 0);
        // The context is usable again once the contention is over.
        AssertComputesCorrectly(shared, seed: 299);
    }

    [Fact]
    public void DefaultSerialisesConcurrentCalls()
    {
        const int hostThreads = 4, iterations = 25;
        var problems = Enumerable.Range(0, hostThreads).Select(i => Problem.Create(seed: 300 + i)).ToArray();
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var start = new Barrier(hostThreads);
        var threads = problems.Select((problem, index) => new Thread(() =>
        {
            float[] y = new float[problem.X.Length];
            start.SignalAndWait();
            for (int i = 0; i < iterations; i++)
            {
                y.AsSpan().Fill(float.NaN);
                try
                {
                    Kernels.RmsNorm<float>(problem.X, problem.Weight, y);
                    if (!y.AsSpan().SequenceEqual(problem.Expected))
                        failures.Enqueue($"host thread {index}, iteration {i}: wrong output");
                }
                catch (Exception e)
                {
                    failures.Enqueue($"host thread {index}, iteration {i}: {e.GetType().Name}: {e.Message}");
                }
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Empty(failures);
    }

    [Fact]
    public void DisposingWhileAnotherThreadCallsIsObjectDisposedNeverACrash()
    {
        var context = new CpuContext(new CpuContextOptions { ThreadCount = 2 });
        Problem problem = Problem.Create(seed: 400);
        int succeeded = 0, disposed = 0;
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var running = new ManualResetEventSlim();
        var caller = new Thread(() =>
        {
            float[] y = new float[problem.X.Length];
            for (int i = 0; i < 100_000; i++)
            {
                y.AsSpan().Fill(float.NaN);
                try
                {
                    Kernels.RmsNorm<float>(problem.X, problem.Weight, y, context: context);
                }
                catch (ObjectDisposedException)
                {
                    disposed++;
                    return;
                }
                catch (Exception e)
                {
                    failures.Enqueue($"{e.GetType().Name}: {e.Message}");
                    return;
                }
                succeeded++;
                if (!y.AsSpan().SequenceEqual(problem.Expected))
                    failures.Enqueue($"iteration {i}: wrong output");
                running.Set();
            }
        });
        caller.Start();
        running.Wait();
        context.Dispose();
        caller.Join();
        output.WriteLine($"{succeeded} calls succeeded before the dispose");
        Assert.Empty(failures);
        Assert.Equal(1, disposed);
    }

    private static void AssertComputesCorrectly(CpuContext context, int seed)
    {
        Problem problem = Problem.Create(seed);
        float[] y = new float[problem.X.Length];
        y.AsSpan().Fill(float.NaN);
        Kernels.RmsNorm<float>(problem.X, problem.Weight, y, context: context);
        float[] naive = RmsNormReference.Naive<float>(problem.X, problem.Weight, NormCases.Epsilon, weightOffsetOne: false);
        Tolerance.AssertClose<float>(y, RmsNormReference.Float64(problem.X, problem.Weight, NormCases.Epsilon, false), naive,
                                     $"context {context.Isa} x {context.ThreadCount} threads");
    }

    /// <summary>Inputs, and the output a fresh single-threaded context of the default ISA computes: rows are
    /// independent, so any split over threads must reproduce it bit for bit.</summary>
    private sealed record Problem(float[] X, float[] Weight, float[] Expected)
    {
        internal static Problem Create(int seed)
        {
            var random = new Random(seed);
            float[] x = NormCases.Activations<float>(random, Rows, Hidden);
            float[] weight = NormCases.Weight<float>(random, Hidden, weightOffsetOne: false);
            float[] expected = new float[x.Length];
            using var reference = new CpuContext(new CpuContextOptions { ThreadCount = 1 });
            Kernels.RmsNorm<float>(x, weight, expected, NormCases.Epsilon, context: reference);
            return new Problem(x, weight, expected);
        }
    }
}
