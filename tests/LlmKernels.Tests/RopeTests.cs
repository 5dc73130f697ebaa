namespace LlmKernels.Tests;

/// <summary>
/// Kernels.Rope on every ISA this CPU runs, for float, Half and BFloat16: both pairings, full and
/// partial rotary dims, GQA, int and long positions, q and k as slices of one fused qkv buffer.
/// Rotated elements are checked against float64 (f32: 2^-23 (|a c| + |b s|); 16-bit: plus half an
/// ulp of the result), everything else (elements past the rotary dim, v, padding) bit for bit
/// unchanged, and every ISA bit for bit equal to the scalar one (same f32 operations, no FMA).
/// </summary>
public sealed class RopeTests
{
    public static TheoryData<CpuIsa, RopeStyle> Cases()
    {
        var data = new TheoryData<CpuIsa, RopeStyle>();
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
            foreach (RopeStyle style in new[] { RopeStyle.NeoX, RopeStyle.GptJ })
                data.Add(isa, style);
        return data;
    }

    [Theory, MemberData(nameof(Cases))]
    public void Float(CpuIsa isa, RopeStyle style) => Check<float>(isa, style);

    [Theory, MemberData(nameof(Cases))]
    public void Half(CpuIsa isa, RopeStyle style) => Check<System.Half>(isa, style);

    [Theory, MemberData(nameof(Cases))]
    public void BFloat16(CpuIsa isa, RopeStyle style) => Check<LlmKernels.BFloat16>(isa, style);

    private static readonly (int Heads, int KvHeads, int HeadDim, int RotaryDim, int Pad)[] s_shapes =
    [
        (4, 4, 64, 64, 0), (8, 2, 128, 128, 0), (6, 2, 128, 64, 16), (5, 1, 80, 80, 3), (3, 0, 96, 32, 0),
        (2, 1, 34, 34, 1), (1, 1, 2, 2, 0), (7, 7, 256, 128, 8), (4, 2, 130, 130, 0), (2, 2, 17, 16, 5),
    ];

    private static void Check<T>(CpuIsa isa, RopeStyle style) where T : unmanaged
    {
        using var context = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 2 });
        using var scalar = new CpuContext(new CpuContextOptions { Isa = CpuIsa.Scalar, ThreadCount = 1 });
        var random = new Random(HashCode.Combine(isa, style, typeof(T).Name) & 0xffff);
        foreach (var (heads, kvHeads, headDim, rotaryDim, pad) in s_shapes)
            foreach (bool longPositions in new[] { false, true })
                foreach (int tokens in new[] { 1, 7, 300 })
                    Run<T>(context, scalar, random, tokens, heads, kvHeads, headDim, rotaryDim, pad, style, longPositions);
    }

    /// <summary>One call on a fused [tokens, (heads + 2 kv) headDim + pad] buffer, checked as the class summary says.</summary>
    internal static void Run<T>(CpuContext context, CpuContext scalar, Random random, int tokens, int heads, int kvHeads, int headDim,
                                int rotaryDim, int pad, RopeStyle style, bool longPositions) where T : unmanaged
    {
        var what = $"Rope<{typeof(T).Name}> {context.Isa} {style} tokens {tokens} heads {heads}/{kvHeads} headDim {headDim} " +
                      $"rot {rotaryDim} pad {pad} {(longPositions ? "long" : "int")} positions";
        int maxPosition = 513;
        RopeCache cache = RopeCache.Build(maxPosition, rotaryDim, 10000.0, context: context);
        int stride = (heads + 2 * Math.Max(kvHeads, 1)) * headDim + pad;
        T[] input = Element.Random<T>(random, tokens * stride, -2f, 2f);
        int[] positions = new int[tokens];
        for (int t = 0; t < tokens; t++)
            positions[t] = t == 0 ? 0 : t == tokens - 1 ? maxPosition - 1 : random.Next(maxPosition);
        long[] longs = Array.ConvertAll(positions, p => (long)p);

        T[] Apply(CpuContext ctx)
        {
            T[] qkv = (T[])input.Clone();
            Span<T> q = qkv, k = kvHeads > 0 ? qkv.AsSpan(heads * headDim) : Span<T>.Empty;
            if (longPositions)
                Kernels.Rope<T>(q, k, longs, cache, heads, kvHeads, headDim, style, stride, stride, ctx);
            else
                Kernels.Rope<T>(q, k, positions, cache, heads, kvHeads, headDim, style, stride, stride, ctx);
            return qkv;
        }

        T[] output = Apply(context);
        int half = rotaryDim / 2;
        ReadOnlySpan<float> cs = cache.CosSin;
        for (int i = 0; i < output.Length; i++)
        {
            int t = i / stride, e = i % stride;
            bool inQ = e < heads * headDim, inK = kvHeads > 0 && e >= heads * headDim && e < (heads + kvHeads) * headDim;
            int inHead = (inQ ? e : e - heads * headDim) % headDim;
            if (!(inQ || inK) || inHead >= rotaryDim)
            {
                if (Bits(input[i]) != Bits(output[i]))
                    Assert.Fail($"{what}: element {i} (token {t}, offset {e}) is not rotated but changed");
                continue;
            }
            int j = style == RopeStyle.GptJ ? inHead / 2 : inHead % half;
            bool first = style == RopeStyle.GptJ ? inHead % 2 == 0 : inHead < half;
            int headStart = i - inHead;
            int ia = headStart + (style == RopeStyle.GptJ ? 2 * j : j), ib = headStart + (style == RopeStyle.GptJ ? 2 * j + 1 : j + half);
            double a = Element.ToFloat(input[ia]), b = Element.ToFloat(input[ib]);
            double c = cs[positions[t] * rotaryDim + j], s = cs[positions[t] * rotaryDim + half + j];
            double reference = first ? a * c - b * s : b * c + a * s;
            double magnitude = first ? Math.Abs(a * c) + Math.Abs(b * s) : Math.Abs(b * c) + Math.Abs(a * s);
            double bound = Math.ScaleB(magnitude, -23) + (typeof(T) == typeof(float) ? 0 : 0.5 * Element.Ulp<T>(Math.Abs(reference)))
                           + (typeof(T) == typeof(System.Half) ? Math.ScaleB(1.0, -25) : 0) + 1e-45;
            double error = Math.Abs(Element.ToFloat(output[i]) - reference);
            if (!(error <= bound))
                Assert.Fail($"{what}: token {t} element {e}: {Element.ToFloat(output[i])}, float64 {reference} (bound {bound})");
        }
        if (context.Isa != CpuIsa.Scalar)
        {
            T[] reference = Apply(scalar);
            for (int i = 0; i < output.Length; i++)
                if (Bits(reference[i]) != Bits(output[i]))
                    Assert.Fail($"{what}: element {i} differs from the scalar ISA");
        }
    }

    private static uint Bits<T>(T value) where T : unmanaged =>
        typeof(T) == typeof(float) ? BitConverter.SingleToUInt32Bits(Element.ToFloat(value))
        : System.Runtime.CompilerServices.Unsafe.As<T, ushort>(ref value);

    /// <summary>Separate q and k buffers with the default strides, and q alone.</summary>
    [Fact]
    public void SeparateBuffersAndQueriesOnly()
    {
        var random = new Random(7);
        RopeCache cache = RopeCache.Build(64, 128, 500000.0);
        float[] q = Element.Random<float>(random, 5 * 8 * 128, -1, 1), k = Element.Random<float>(random, 5 * 2 * 128, -1, 1);
        int[] positions = [0, 1, 2, 63, 5];
        float[] fused = new float[5 * 12 * 128];
        for (int t = 0; t < 5; t++)
        {
            q.AsSpan(t * 1024, 1024).CopyTo(fused.AsSpan(t * 1536));
            k.AsSpan(t * 256, 256).CopyTo(fused.AsSpan(t * 1536 + 1024));
        }
        float[] qOnly = (float[])q.Clone();
        Kernels.Rope<float>(q, k, positions, cache, 8, 2, 128);
        Kernels.Rope<float>(qOnly, Span<float>.Empty, positions, cache, 8, 0, 128);
        Kernels.Rope<float>(fused, fused.AsSpan(1024), positions, cache, 8, 2, 128, qStride: 1536, kStride: 1536);
        for (int t = 0; t < 5; t++)
        {
            Assert.True(q.AsSpan(t * 1024, 1024).SequenceEqual(fused.AsSpan(t * 1536, 1024)));
            Assert.True(k.AsSpan(t * 256, 256).SequenceEqual(fused.AsSpan(t * 1536 + 1024, 256)));
        }
        Assert.Equal(q, qOnly);
    }

    /// <summary>Position 0 is the identity (cos 1, sin 0); and the raw-cache overload equals the RopeCache one.</summary>
    [Fact]
    public void PositionZeroIsIdentityAndRawCacheMatches()
    {
        var random = new Random(3);
        RopeCache cache = RopeCache.Build(16, 64);
        float[] x = Element.Random<float>(random, 2 * 64, -1, 1), y = (float[])x.Clone(), z = (float[])x.Clone();
        Kernels.Rope<float>(y, Span<float>.Empty, new[] { 0, 0 }, cache, 1, 0, 64);
        Assert.Equal(x, y);
        Kernels.Rope<float>(y, Span<float>.Empty, new long[] { 3, 15 }, cache, 1, 0, 64);
        Kernels.Rope<float>(z, Span<float>.Empty, new long[] { 3, 15 }, cache.CosSin, 64, 1, 0, 64);
        Assert.Equal(y, z);
        Assert.NotEqual(x, y);
    }

    /// <summary>RoPE preserves each pair's norm: a rotation.</summary>
    [Fact]
    public void RotationPreservesPairNorms()
    {
        var random = new Random(11);
        RopeCache cache = RopeCache.Build(4096, 128, 500000.0, RopeScaling.Llama3());
        double[] norms = new double[64];
        float[] x = Element.Random<float>(random, 128, -1, 1);
        for (int j = 0; j < 64; j++) norms[j] = Math.Sqrt((double)x[j] * x[j] + (double)x[j + 64] * x[j + 64]);
        Kernels.Rope<float>(x, Span<float>.Empty, new[] { 4095 }, cache, 1, 0, 128);
        for (int j = 0; j < 64; j++)
            Assert.Equal(norms[j], Math.Sqrt((double)x[j] * x[j] + (double)x[j + 64] * x[j + 64]), 5);
    }
}
