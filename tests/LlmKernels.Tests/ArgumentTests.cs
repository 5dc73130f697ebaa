using System.Runtime.InteropServices;

namespace LlmKernels.Tests;

/// <summary>
/// Every bad input gets its own exception naming the parameter (TensorPrimitives' style), before
/// anything is written; and the edge cases that are not errors (no rows, epsilon 0) just work.
/// </summary>
public sealed class ArgumentTests
{
    private const int Hidden = 4;

    private static void ThrowsArgument(string paramName, Action action)
    {
        var e = Assert.Throws<ArgumentException>(action);
        Assert.Equal(paramName, e.ParamName);
    }

    [Fact]
    public void EmptyWeightNamesWeight()
    {
        ThrowsArgument("weight", () => Kernels.RmsNorm<float>(new float[8], Array.Empty<float>(), new float[8]));
        ThrowsArgument("weight", () => Kernels.RmsNorm<Half>(new Half[8], Array.Empty<float>(), new Half[8]));
        ThrowsArgument("weight", () => Kernels.FusedAddRmsNorm<float>(new float[8], new float[8], Array.Empty<float>(), new float[8]));
        // Even with no rows: a zero-length row is meaningless, not an empty tensor.
        ThrowsArgument("weight", () => Kernels.RmsNorm<float>(Array.Empty<float>(), Array.Empty<float>(), Array.Empty<float>()));
    }

    [Fact]
    public void RaggedXNamesX()
    {
        ThrowsArgument("x", () => Kernels.RmsNorm<float>(new float[7], new float[Hidden], new float[7]));
        ThrowsArgument("x", () => Kernels.RmsNorm<BFloat16>(new BFloat16[Hidden + 1], new BFloat16[Hidden], new BFloat16[Hidden + 1]));
        ThrowsArgument("x", () => Kernels.FusedAddRmsNorm<Half>(new Half[3], new Half[3], new Half[Hidden], new Half[3]));
    }

    [Fact]
    public void DestinationLengthNamesDestination()
    {
        ThrowsArgument("destination", () => Kernels.RmsNorm<float>(new float[8], new float[Hidden], new float[7]));
        ThrowsArgument("destination", () => Kernels.RmsNorm<float>(new float[8], new float[Hidden], new float[12]));
        ThrowsArgument("destination", () => Kernels.RmsNorm<float>(new float[8], new float[Hidden], Array.Empty<float>()));
        ThrowsArgument("destination", () => Kernels.FusedAddRmsNorm<Half>(new Half[8], new Half[8], new float[Hidden], new Half[4]));
    }

    [Fact]
    public void ResidualLengthNamesResidual()
    {
        ThrowsArgument("residual", () => Kernels.FusedAddRmsNorm<float>(new float[8], new float[4], new float[Hidden], new float[8]));
        ThrowsArgument("residual", () => Kernels.FusedAddRmsNorm<float>(new float[8], new float[12], new float[Hidden], new float[8]));
        ThrowsArgument("residual", () => Kernels.FusedAddRmsNorm<BFloat16>(new BFloat16[8], Array.Empty<BFloat16>(), new BFloat16[Hidden], new BFloat16[8]));
    }

    [Fact]
    public void DestinationPartlyOverlappingXNamesDestination()
    {
        var buffer = new float[2 * Hidden + 1];
        ThrowsArgument("destination", () => Kernels.RmsNorm<float>(buffer.AsSpan(..^1), new float[Hidden], buffer.AsSpan(1..)));
        ThrowsArgument("destination", () => Kernels.RmsNorm<float>(buffer.AsSpan(1..), new float[Hidden], buffer.AsSpan(..^1)));
        // A whole row apart is still a partial overlap: row 1 of x would be read after it was written.
        var rows = new float[3 * Hidden];
        ThrowsArgument("destination", () => Kernels.RmsNorm<float>(rows.AsSpan(..(2 * Hidden)), new float[Hidden], rows.AsSpan(Hidden..)));
        ThrowsArgument("destination", () =>
            Kernels.FusedAddRmsNorm<float>(buffer.AsSpan(..^1), new float[2 * Hidden], new float[Hidden], buffer.AsSpan(1..)));
    }

    [Fact]
    public void DestinationPartlyOverlappingResidualNamesDestination()
    {
        var buffer = new Half[2 * Hidden + 1];
        ThrowsArgument("destination", () =>
            Kernels.FusedAddRmsNorm<Half>(new Half[2 * Hidden], buffer.AsSpan(..^1), new Half[Hidden], buffer.AsSpan(1..)));
    }

    [Fact]
    public void ResidualOverlappingXNamesResidual()
    {
        var buffer = new float[3 * Hidden];
        ThrowsArgument("residual", () =>
            Kernels.FusedAddRmsNorm<float>(buffer.AsSpan(..(2 * Hidden)), buffer.AsSpan(Hidden..), new float[Hidden], new float[2 * Hidden]));
        // The same memory too: only destination may alias an input.
        var same = new float[2 * Hidden];
        ThrowsArgument("residual", () => Kernels.FusedAddRmsNorm<float>(same, same, new float[Hidden], new float[2 * Hidden]));
    }

    [Fact]
    public void DestinationOverlappingWeightNamesDestination()
    {
        var buffer = new float[3 * Hidden];
        ThrowsArgument("destination", () =>
            Kernels.RmsNorm<float>(new float[2 * Hidden], buffer.AsSpan(..Hidden), buffer.AsSpan(Hidden / 2, 2 * Hidden)));
        // Different element types over the same bytes: an f32 weight under a Half destination.
        var bytes = new float[2 * Hidden];
        ThrowsArgument("destination", () =>
            Kernels.RmsNorm<Half>(new Half[2 * Hidden], bytes.AsSpan(..Hidden), MemoryMarshal.Cast<float, Half>(bytes.AsSpan())[..(2 * Hidden)]));
    }

    [Fact]
    public void ResidualOverlappingWeightNamesResidual()
    {
        var buffer = new BFloat16[3 * Hidden];
        ThrowsArgument("residual", () =>
            Kernels.FusedAddRmsNorm<BFloat16>(new BFloat16[2 * Hidden], buffer.AsSpan(Hidden..), buffer.AsSpan(..(Hidden + 1))[1..], new BFloat16[2 * Hidden]));
    }

    [Theory]
    [InlineData(-1f)]
    [InlineData(-1e-30f)]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void BadEpsilonIsOutOfRange(float epsilon)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Kernels.RmsNorm<float>(new float[8], new float[Hidden], new float[8], epsilon));
        Assert.Equal("epsilon", e.ParamName);
        e = Assert.Throws<ArgumentOutOfRangeException>(() =>
            Kernels.FusedAddRmsNorm<Half>(new Half[8], new Half[8], new float[Hidden], new Half[8], epsilon));
        Assert.Equal("epsilon", e.ParamName);
    }

    [Fact]
    public void ZeroEpsilonIsAllowed()
    {
        float[] y = new float[Hidden];
        Kernels.RmsNorm<float>([3f, 4f, 0f, 0f], [1f, 1f, 1f, 1f], y, epsilon: 0f);
        // rms = sqrt(25 / 4) = 2.5; zeros stay zero (no 0 / 0).
        Assert.Equal(1.2f, y[0], 1e-6f);
        Assert.Equal(1.6f, y[1], 1e-6f);
        Assert.Equal(0f, y[2]);
        Assert.Equal(0f, y[3]);
    }

    [Fact]
    public void UnsupportedElementTypeIsNotSupported()
    {
        Assert.Throws<NotSupportedException>(() => Kernels.RmsNorm<double>(new double[8], new double[Hidden], new double[8]));
        Assert.Throws<NotSupportedException>(() => Kernels.RmsNorm<int>(new int[8], new int[Hidden], new int[8]));
        Assert.Throws<NotSupportedException>(() => Kernels.RmsNorm<int>(new int[8], new float[Hidden], new int[8]));
        Assert.Throws<NotSupportedException>(() => Kernels.FusedAddRmsNorm<double>(new double[8], new double[8], new double[Hidden], new double[8]));
        Assert.Throws<NotSupportedException>(() => Kernels.FusedAddRmsNorm<short>(new short[8], new short[8], new float[Hidden], new short[8]));
    }

    [Fact]
    public void NoRowsIsANoOp()
    {
        Kernels.RmsNorm<float>(Array.Empty<float>(), new float[Hidden], Array.Empty<float>());
        Kernels.RmsNorm<Half>(Array.Empty<Half>(), new float[Hidden], Array.Empty<Half>());
        Kernels.FusedAddRmsNorm<BFloat16>(Array.Empty<BFloat16>(), Array.Empty<BFloat16>(), new BFloat16[Hidden], Array.Empty<BFloat16>());
    }

    [Fact]
    public void NegativeThreadCountIsOutOfRange()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new CpuContext(new CpuContextOptions { ThreadCount = -1 }));
        Assert.Equal("options", e.ParamName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new CpuContext(new CpuContextOptions { ThreadCount = int.MinValue }));
    }

    /// <summary>Like a negative count: an argument error naming the constructor's parameter, not the C field.</summary>
    [Fact]
    public void TooManyThreadsIsAnArgumentErrorNamingOptions()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => new CpuContext(new CpuContextOptions { ThreadCount = 1_000_000 }));
        Assert.Equal("options", e.ParamName);
    }

    [Fact]
    public void UndefinedIsaIsOutOfRange() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new CpuContext(new CpuContextOptions { Isa = (CpuIsa)42 }));

    /// <summary>A forced level either runs (it is in SupportedIsas) or is refused as unsupported; never anything else.</summary>
    [Theory]
    [InlineData(CpuIsa.Scalar)]
    [InlineData(CpuIsa.Avx2)]
    [InlineData(CpuIsa.Avx512)]
    public void ForcedIsaRunsOrIsNotSupported(CpuIsa isa)
    {
        if (CpuContext.SupportedIsas.Contains(isa))
        {
            using var context = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 1 });
            Assert.Equal(isa, context.Isa);
        }
        else
        {
            Assert.Throws<NotSupportedException>(() => new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 1 }));
        }
    }

    [Fact]
    public void ScalarIsAlwaysSupported() => Assert.Contains(CpuIsa.Scalar, CpuContext.SupportedIsas);

    [Fact]
    public void DisposedContextIsObjectDisposed()
    {
        var context = new CpuContext(new CpuContextOptions { ThreadCount = 2 });
        context.Dispose();
        context.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => Kernels.RmsNorm<float>(new float[8], new float[Hidden], new float[8], context: context));
        Assert.Throws<ObjectDisposedException>(() =>
            Kernels.FusedAddRmsNorm<Half>(new Half[8], new Half[8], new Half[Hidden], new Half[8], context: context));
    }
}
