namespace LlmKernels.Tests;

/// <summary>Every bad input of the activation and GLU APIs throws an ArgumentException (or its
/// ArgumentOutOfRangeException subclass) naming the parameter, before anything is written; empty
/// inputs are no-ops.</summary>
public sealed class ActivationArgumentTests
{
    private static void Throws(string paramName, Action action)
    {
        var e = Assert.ThrowsAny<ArgumentException>(action);
        Assert.Equal(paramName, e.ParamName);
    }

    [Fact]
    public void ActivationLengthsAndOverlap()
    {
        Throws("destination", () => Kernels.Activation<float>(new float[8], new float[7], ActivationFunction.Silu));
        Throws("destination", () => Kernels.Silu<Half>(new Half[8], new Half[9]));
        Throws("destination", () => Kernels.Gelu<BFloat16>(new BFloat16[8], Array.Empty<BFloat16>()));
        var buffer = new float[9];
        Throws("destination", () => Kernels.Exp<float>(buffer.AsSpan(0, 8), buffer.AsSpan(1, 8)));
        Throws("destination", () => Kernels.Tanh<float>(buffer.AsSpan(1, 8), buffer.AsSpan(0, 8)));
        Kernels.Erf<float>(buffer, buffer); // in place is fine
        Kernels.Relu<float>(Array.Empty<float>(), Array.Empty<float>());
        Kernels.Sigmoid<float>(Array.Empty<float>(), Array.Empty<float>());
    }

    [Fact]
    public void EnumsOutOfRange()
    {
        Throws("activation", () => Kernels.Activation<float>(new float[4], new float[4], (ActivationFunction)8));
        Throws("activation", () => Kernels.Activation<float>(new float[4], new float[4], (ActivationFunction)(-1)));
        Throws("approximation", () => Kernels.Gelu<float>(new float[4], new float[4], (GeluApproximation)2));
        Throws("activation", () => Kernels.Glu<float>(new float[8], new float[4], 2, (ActivationFunction)9));
        Throws("activation", () => Kernels.Glu<float>(new float[4], new float[4], new float[4], (ActivationFunction)9));
        Throws("layout", () => Kernels.Glu<float>(new float[8], new float[4], 2, ActivationFunction.Silu, (GluLayout)2));
        Throws("approximation", () => Kernels.GeGlu<float>(new float[8], new float[4], 2, (GeluApproximation)5));
    }

    [Fact]
    public void PackedShapes()
    {
        Throws("d", () => Kernels.SwiGlu<float>(new float[8], new float[4], 0));
        Throws("d", () => Kernels.SwiGlu<float>(new float[8], new float[4], -3));
        // x is not whole rows of 2 * d: an odd packed row, or a ragged last row.
        Throws("x", () => Kernels.SwiGlu<float>(new float[7], new float[3], 2));
        Throws("x", () => Kernels.GeGlu<Half>(new Half[9], new Half[4], 4));
        Throws("x", () => Kernels.ReGlu<BFloat16>(new BFloat16[10], new BFloat16[5], 3));
        Throws("destination", () => Kernels.SwiGlu<float>(new float[8], new float[3], 2));
        Throws("destination", () => Kernels.SwiGlu<float>(new float[8], new float[8], 2));
        Throws("destination", () => Kernels.SwiGlu<float>(new float[8], Array.Empty<float>(), 2));
        var buffer = new float[16];
        Throws("destination", () => Kernels.SwiGlu<float>(buffer.AsSpan(0, 8), buffer.AsSpan(4, 4), 2));
        Throws("destination", () => Kernels.SwiGlu<float>(buffer.AsSpan(0, 8), buffer.AsSpan(0, 4), 2)); // no in place when packed
        Kernels.SwiGlu<float>(Array.Empty<float>(), Array.Empty<float>(), 4);
    }

    [Fact]
    public void SplitShapesAndOverlap()
    {
        Throws("up", () => Kernels.SwiGlu<float>(new float[8], new float[7], new float[8]));
        Throws("destination", () => Kernels.GeGlu<Half>(new Half[8], new Half[8], new Half[9]));
        Throws("destination", () => Kernels.ReGlu<BFloat16>(new BFloat16[8], new BFloat16[8], new BFloat16[7]));
        var buffer = new float[32];
        Throws("up", () => Kernels.SwiGlu<float>(buffer.AsSpan(0, 8), buffer.AsSpan(4, 8), new float[8]));
        Throws("destination", () => Kernels.SwiGlu<float>(new float[8], buffer.AsSpan(0, 8), buffer.AsSpan(4, 8)));
        Throws("destination", () => Kernels.SwiGlu<float>(new float[8], buffer.AsSpan(0, 8), buffer.AsSpan(0, 8))); // out == up
        Throws("destination", () => Kernels.SwiGlu<float>(buffer.AsSpan(0, 8), new float[8], buffer.AsSpan(2, 8)));
        Kernels.SwiGlu<float>(buffer.AsSpan(0, 8), buffer.AsSpan(8, 8), buffer.AsSpan(0, 8)); // destination = gate: in place
        Kernels.SwiGlu<float>(Array.Empty<float>(), Array.Empty<float>(), Array.Empty<float>());
    }
}
