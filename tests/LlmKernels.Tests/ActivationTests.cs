namespace LlmKernels.Tests;

/// <summary>
/// Kernels.Activation and its named forms on every ISA this CPU runs, for float, Half and BFloat16:
/// every activation against float64 (<see cref="ActivationReference"/>) over lengths 0-257 and a long
/// span split over two threads; every output written (the destination starts as NaN); in place equal
/// to out of place bit for bit (NaN payloads aside); and the values at infinities and NaN.
/// </summary>
public sealed class ActivationTests
{
    public static TheoryData<CpuIsa, ActivationFunction> Cases()
    {
        var data = new TheoryData<CpuIsa, ActivationFunction>();
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
            foreach (ActivationFunction f in ActivationReference.All)
                data.Add(isa, f);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void Float(CpuIsa isa, ActivationFunction f) => Check<float>(isa, f);

    [Theory, MemberData(nameof(Cases))]
    public void Half(CpuIsa isa, ActivationFunction f) => Check<System.Half>(isa, f);

    [Theory, MemberData(nameof(Cases))]
    public void BFloat16(CpuIsa isa, ActivationFunction f) => Check<LlmKernels.BFloat16>(isa, f);

    private static void Check<T>(CpuIsa isa, ActivationFunction f) where T : unmanaged
    {
        using var context = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 2 });
        var random = new Random(HashCode.Combine(isa, f, typeof(T).Name) & 0xffff);
        for (int n = 0; n <= 257; n++)
            Run<T>(context, f, n, random);
        Run<T>(context, f, 150_001, random);
    }

    private static void Run<T>(CpuContext context, ActivationFunction f, int n, Random random) where T : unmanaged
    {
        T[] x = ActivationReference.Inputs<T>(random, n);
        T[] y = Enumerable.Repeat(Element.NaN<T>(), n).ToArray();
        Kernels.Activation<T>(x, y, f, context);
        for (int i = 0; i < n; i++)
        {
            double input = Element.ToFloat(x[i]), act = ActivationReference.Apply(f, input);
            float got = Element.ToFloat(y[i]);
            if (!ActivationReference.Agrees<T>(f, got, act, 1.0))
                Assert.Fail($"{f}<{typeof(T).Name}> {context.Isa} n={n} i={i}: x={input:R} got {got:R}, want {act:R}");
        }
        T[] inPlace = (T[])x.Clone();
        Kernels.Activation<T>(inPlace, inPlace, f, context);
        for (int i = 0; i < n; i++)
            if (!(inPlace[i].Equals(y[i]) || float.IsNaN(Element.ToFloat(y[i])) && float.IsNaN(Element.ToFloat(inPlace[i]))))
                Assert.Fail($"{f}<{typeof(T).Name}> {context.Isa} in place differs at {i}");
    }

    [Fact]
    public void NamedFormsMatchActivation()
    {
        var random = new Random(5);
        float[] x = ActivationReference.Inputs<float>(random, 100);
        var cases = new (ActivationFunction F, Action<float[], float[]> Call)[]
        {
            (ActivationFunction.Silu, (a, b) => Kernels.Silu<float>(a, b)),
            (ActivationFunction.GeluErf, (a, b) => Kernels.Gelu<float>(a, b)),
            (ActivationFunction.GeluTanh, (a, b) => Kernels.Gelu<float>(a, b, GeluApproximation.Tanh)),
            (ActivationFunction.Relu, (a, b) => Kernels.Relu<float>(a, b)),
            (ActivationFunction.Sigmoid, (a, b) => Kernels.Sigmoid<float>(a, b)),
            (ActivationFunction.Exp, (a, b) => Kernels.Exp<float>(a, b)),
            (ActivationFunction.Tanh, (a, b) => Kernels.Tanh<float>(a, b)),
            (ActivationFunction.Erf, (a, b) => Kernels.Erf<float>(a, b)),
        };
        foreach (var (f, call) in cases)
        {
            float[] named = new float[x.Length], general = new float[x.Length];
            call(x, named);
            Kernels.Activation<float>(x, general, f);
            Assert.Equal(general.Select(BitConverter.SingleToInt32Bits), named.Select(BitConverter.SingleToInt32Bits));
        }
    }

    [Fact]
    public void SpecialValues()
    {
        float inf = float.PositiveInfinity;
        float[] x = { inf, -inf, float.NaN, 100f, -200f, 0f };
        float Run(ActivationFunction f, int i)
        {
            var y = new float[x.Length];
            Kernels.Activation<float>(x, y, f);
            return y[i];
        }
        Assert.Equal(inf, Run(ActivationFunction.Exp, 0));
        Assert.Equal(0f, Run(ActivationFunction.Exp, 1));
        Assert.Equal(inf, Run(ActivationFunction.Exp, 3));
        Assert.Equal(0f, Run(ActivationFunction.Exp, 4));
        Assert.Equal(inf, Run(ActivationFunction.Silu, 0));
        Assert.Equal(0f, Run(ActivationFunction.Silu, 1));
        Assert.Equal(0f, Run(ActivationFunction.GeluErf, 1));
        Assert.Equal(0f, Run(ActivationFunction.GeluTanh, 1));
        Assert.Equal(inf, Run(ActivationFunction.GeluErf, 0));
        Assert.Equal(1f, Run(ActivationFunction.Tanh, 0));
        Assert.Equal(-1f, Run(ActivationFunction.Tanh, 1));
        Assert.Equal(1f, Run(ActivationFunction.Erf, 3));
        Assert.Equal(-1f, Run(ActivationFunction.Erf, 4));
        Assert.Equal(1f, Run(ActivationFunction.Sigmoid, 0));
        Assert.Equal(0f, Run(ActivationFunction.Sigmoid, 1));
        foreach (ActivationFunction f in ActivationReference.All)
            Assert.True(float.IsNaN(Run(f, 2)), $"{f}(NaN)");
    }
}
