namespace LlmKernels.Tests;

/// <summary>
/// Kernels.Glu (packed gate-first and up-first rows, and separate gate/up spans) and the SwiGlu,
/// GeGlu, ReGlu forms on every ISA this CPU runs, for float, Half and BFloat16: against float64
/// <c>act(gate) * up</c>, over d = 1..67 and a long SwiGLU (threads, streaming stores), every output
/// written, and the split form in place (destination = gate) equal to out of place.
/// </summary>
public sealed class GluTests
{
    public static TheoryData<CpuIsa, ActivationFunction> Cases() => ActivationTests.Cases();

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
        for (int d = 1; d <= 67; d++)
            Run<T>(context, f, tokens: 3, d, random);
        if (f == ActivationFunction.Silu)
            Run<T>(context, f, tokens: 300, d: 14336 + 3, random);
    }

    private static void Run<T>(CpuContext context, ActivationFunction f, int tokens, int d, Random random) where T : unmanaged
    {
        T[] gate = ActivationReference.Inputs<T>(random, tokens * d), up = Element.Random<T>(random, tokens * d, -2f, 2f);
        double[] want = new double[tokens * d], act = new double[tokens * d];
        for (int i = 0; i < want.Length; i++)
        {
            act[i] = ActivationReference.Apply(f, Element.ToFloat(gate[i]));
            want[i] = act[i] * Element.ToFloat(up[i]);
        }
        void Verify(T[] got, string what)
        {
            for (int i = 0; i < got.Length; i++)
                if (!ActivationReference.Agrees<T>(f, Element.ToFloat(got[i]), act[i], Element.ToFloat(up[i])))
                    Assert.Fail($"{what} {f}<{typeof(T).Name}> {context.Isa} [{tokens} x {d}] i={i}: gate={Element.ToFloat(gate[i]):R} " +
                    $"up={Element.ToFloat(up[i]):R} got {Element.ToFloat(got[i]):R}, want {want[i]:R}");
        }

        // Packed rows, both layouts.
        foreach (GluLayout layout in new[] { GluLayout.GateFirst, GluLayout.UpFirst })
        {
            var x = new T[tokens * 2 * d];
            for (int t = 0; t < tokens; t++)
            {
                gate.AsSpan(t * d, d).CopyTo(x.AsSpan(t * 2 * d + (layout == GluLayout.GateFirst ? 0 : d)));
                up.AsSpan(t * d, d).CopyTo(x.AsSpan(t * 2 * d + (layout == GluLayout.GateFirst ? d : 0)));
            }
            T[] packed = Enumerable.Repeat(Element.NaN<T>(), tokens * d).ToArray();
            Kernels.Glu<T>(x, packed, d, f, layout, context);
            Verify(packed, $"packed {layout}");
        }

        // Separate gate and up, out of place and in place.
        T[] split = Enumerable.Repeat(Element.NaN<T>(), tokens * d).ToArray();
        Kernels.Glu<T>(gate, up, split, f, context);
        Verify(split, "split");
        T[] inPlace = (T[])gate.Clone();
        Kernels.Glu<T>(inPlace, up, inPlace, f, context);
        for (int i = 0; i < split.Length; i++)
            if (!(inPlace[i].Equals(split[i]) || float.IsNaN(Element.ToFloat(split[i])) && float.IsNaN(Element.ToFloat(inPlace[i]))))
                Assert.Fail($"split in place differs at {i}");
    }

    [Fact]
    public void NamedFormsMatchGlu()
    {
        var random = new Random(9);
        const int d = 37, tokens = 2;
        float[] x = ActivationReference.Inputs<float>(random, tokens * 2 * d), gate = x.AsSpan(0, tokens * d).ToArray(),
                up = x.AsSpan(tokens * d).ToArray();
        float[] Packed(Action<float[]> call) { var o = new float[tokens * d]; call(o); return o; }
        Assert.Equal(Packed(o => Kernels.Glu<float>(x, o, d, ActivationFunction.Silu)), Packed(o => Kernels.SwiGlu<float>(x, o, d)));
        Assert.Equal(Packed(o => Kernels.Glu<float>(x, o, d, ActivationFunction.Silu, GluLayout.UpFirst)),
                     Packed(o => Kernels.SwiGlu<float>(x, o, d, GluLayout.UpFirst)));
        Assert.Equal(Packed(o => Kernels.Glu<float>(x, o, d, ActivationFunction.GeluErf)), Packed(o => Kernels.GeGlu<float>(x, o, d)));
        Assert.Equal(Packed(o => Kernels.Glu<float>(x, o, d, ActivationFunction.GeluTanh)),
                     Packed(o => Kernels.GeGlu<float>(x, o, d, GeluApproximation.Tanh)));
        Assert.Equal(Packed(o => Kernels.Glu<float>(x, o, d, ActivationFunction.Relu)), Packed(o => Kernels.ReGlu<float>(x, o, d)));
        Assert.Equal(Packed(o => Kernels.Glu<float>(gate, up, o, ActivationFunction.Silu)), Packed(o => Kernels.SwiGlu<float>(gate, up, o)));
        Assert.Equal(Packed(o => Kernels.Glu<float>(gate, up, o, ActivationFunction.GeluErf)), Packed(o => Kernels.GeGlu<float>(gate, up, o)));
        Assert.Equal(Packed(o => Kernels.Glu<float>(gate, up, o, ActivationFunction.GeluTanh)),
                     Packed(o => Kernels.GeGlu<float>(gate, up, o, GeluApproximation.Tanh)));
        Assert.Equal(Packed(o => Kernels.Glu<float>(gate, up, o, ActivationFunction.Relu)), Packed(o => Kernels.ReGlu<float>(gate, up, o)));
        // Gate-first packed rows equal the split form on the same halves.
        var rowsGate = new float[tokens * d];
        var rowsUp = new float[tokens * d];
        for (int t = 0; t < tokens; t++)
        {
            x.AsSpan(t * 2 * d, d).CopyTo(rowsGate.AsSpan(t * d));
            x.AsSpan(t * 2 * d + d, d).CopyTo(rowsUp.AsSpan(t * d));
        }
        Assert.Equal(Packed(o => Kernels.SwiGlu<float>(rowsGate, rowsUp, o)), Packed(o => Kernels.SwiGlu<float>(x, o, d)));
    }
}
