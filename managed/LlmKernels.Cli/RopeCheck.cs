namespace LlmKernels.Cli;

/// <summary>
/// <c>llmk check</c> rows for the positions family: RoPE (both pairings, fused qkv views, partial
/// rotary, GQA) per ISA and dtype against float64, with the naive same-precision rotation (f32
/// products and sum, one rounding) as the yardstick; and, once, the cos/sin cache of every scaling
/// rule against float64 formulas, with an f32 evaluation of the same angles as the naive error.
/// </summary>
internal static class RopeCheck
{
    private static readonly (int Heads, int KvHeads, int HeadDim, int RotaryDim)[] s_shapes =
        [(32, 8, 128, 128), (8, 2, 64, 32), (5, 1, 80, 80), (3, 3, 34, 34), (4, 0, 96, 64)];

    public static int Run(TextWriter output, CpuContext context)
    {
        int failures = 0;
        foreach (RopeStyle style in new[] { RopeStyle.NeoX, RopeStyle.GptJ })
        {
            failures += Row<float>(output, context, style);
            failures += Row<Half>(output, context, style);
            failures += Row<BFloat16>(output, context, style);
        }
        if (context.Isa == CpuContext.SupportedIsas[0])
            failures += CacheRows(output, context);
        return failures;
    }

    private static int Row<T>(TextWriter output, CpuContext context, RopeStyle style) where T : unmanaged
    {
        var total = new ErrorStats();
        var random = new Random(4321);
        foreach (var (heads, kvHeads, headDim, rotaryDim) in s_shapes)
            total.Add(Compare<T>(context, random, tokens: 33, heads, kvHeads, headDim, rotaryDim, style));
        string name = style == RopeStyle.NeoX ? "rope_neox" : "rope_gptj";
        output.WriteLine($"{name,-20} {context.Isa.ToString().ToLowerInvariant(),-7} {Elements.Name<T>(),-5} {total.Cases,5} " +
                         $"{total.MaxError,10:E2} {total.MaxNaiveError,10:E2} {(total.Passes ? "ok" : "FAIL"),7}");
        return total.Passes ? 0 : 1;
    }

    private static ErrorStats Compare<T>(CpuContext context, Random random, int tokens, int heads, int kvHeads, int headDim,
                                         int rotaryDim, RopeStyle style) where T : unmanaged
    {
        const int maxPosition = 4096;
        RopeCache cache = RopeCache.Build(maxPosition, rotaryDim, 500000.0, RopeScaling.Llama3(), context);
        int stride = (heads + 2 * Math.Max(kvHeads, 1)) * headDim;
        var qkv = new T[tokens * stride];
        for (int i = 0; i < qkv.Length; i++)
            qkv[i] = Elements.FromFloat<T>(random.NextSingle() * 4 - 2);
        var positions = new int[tokens];
        for (int t = 0; t < tokens; t++)
            positions[t] = t == tokens - 1 ? maxPosition - 1 : random.Next(maxPosition);
        var input = (T[])qkv.Clone();
        Kernels.Rope<T>(qkv, kvHeads > 0 ? qkv.AsSpan(heads * headDim) : Span<T>.Empty, positions, cache, heads, kvHeads, headDim, style,
                        stride, stride, context);

        int half = rotaryDim / 2;
        double error = 0, naiveError = 0, maxMagnitude = 0;
        ReadOnlySpan<float> cs = cache.CosSin;
        for (int t = 0; t < tokens; t++)
            for (int h = 0; h < heads + kvHeads; h++)
            {
                int head = t * stride + h * headDim;
                for (int j = 0; j < half; j++)
                {
                    int ia = head + (style == RopeStyle.GptJ ? 2 * j : j), ib = head + (style == RopeStyle.GptJ ? 2 * j + 1 : j + half);
                    float a = Elements.ToFloat(input[ia]), b = Elements.ToFloat(input[ib]);
                    float c = cs[positions[t] * rotaryDim + j], s = cs[positions[t] * rotaryDim + half + j];
                    double[] reference = [(double)a * c - (double)b * s, (double)b * c + (double)a * s];
                    float[] naive = [Elements.Round<T>(a * c - b * s), Elements.Round<T>(b * c + a * s)];
                    int[] index = [ia, ib];
                    for (int m = 0; m < 2; m++)
                    {
                        double got = Elements.ToFloat(qkv[index[m]]);
                        error = Math.Max(error, double.IsNaN(got) ? double.PositiveInfinity : Math.Abs(got - reference[m]));
                        naiveError = Math.Max(naiveError, Math.Abs(naive[m] - reference[m]));
                        maxMagnitude = Math.Max(maxMagnitude, Math.Abs(reference[m]));
                    }
                }
            }
        double atol = typeof(T) == typeof(float) ? 1e-6 * maxMagnitude : Math.ScaleB(1.0, Math.ILogB(maxMagnitude) - (typeof(T) == typeof(Half) ? 10 : 7));
        return ErrorStats.One(error, naiveError, atol);
    }

    private static int CacheRows(TextWriter output, CpuContext context)
    {
        (string Name, int MaxPosition, int RotaryDim, double Theta, RopeScaling Scaling)[] rules =
        [
            ("rope_cache default", 1_000_001, 8, 10000.0, RopeScaling.None),
            ("rope_cache linear", 32768, 128, 10000.0, RopeScaling.Linear(4)),
            ("rope_cache dynamic", 16384, 128, 10000.0, RopeScaling.Dynamic(2, 4096)),
            ("rope_cache yarn", 32768, 128, 10000.0, RopeScaling.Yarn(8, 4096)),
            ("rope_cache llama3", 131072, 128, 500000.0, RopeScaling.Llama3()),
        ];
        int failures = 0;
        foreach (var (name, maxPosition, rotaryDim, theta, scaling) in rules)
        {
            RopeCache cache = RopeCache.Build(maxPosition, rotaryDim, theta, scaling, context);
            double[] inv = InvFreq(rotaryDim, theta, scaling, maxPosition, out double m);
            int half = rotaryDim / 2;
            ReadOnlySpan<float> v = cache.CosSin;
            double error = 0, naiveError = 0;
            int cases = 0;
            for (int p = 0; p < maxPosition; p += p < 64 ? 1 : 1 + maxPosition / 512)
                for (int j = 0; j < half; j++)
                {
                    cases++;
                    double angle = p * inv[j];
                    float naiveAngle = (float)p * (float)inv[j]; // the angle as an f32 pipeline computes it
                    error = Math.Max(error, Math.Abs(v[p * rotaryDim + j] - Math.Cos(angle) * m));
                    error = Math.Max(error, Math.Abs(v[p * rotaryDim + half + j] - Math.Sin(angle) * m));
                    naiveError = Math.Max(naiveError, Math.Abs(MathF.Cos(naiveAngle) * (float)m - Math.Cos(angle) * m));
                    naiveError = Math.Max(naiveError, Math.Abs(MathF.Sin(naiveAngle) * (float)m - Math.Sin(angle) * m));
                }
            var stats = ErrorStats.One(error, naiveError, 1.2e-7); // one f32 ulp at 1
            failures += stats.Passes ? 0 : 1;
            output.WriteLine($"{name,-20} {"any",-7} {"f32",-5} {cases,5} {stats.MaxError,10:E2} {stats.MaxNaiveError,10:E2} {(stats.Passes ? "ok" : "FAIL"),7}");
        }
        return failures;
    }

    /// <summary>The inverse frequencies and multiplier of each rule (HF's modeling_rope_utils, vLLM's rotary_embedding), in double.</summary>
    private static double[] InvFreq(int d, double theta, RopeScaling s, int maxPosition, out double m)
    {
        m = 1.0;
        double baseValue = theta;
        if (s.RopeType == RopeScalingType.Dynamic)
            baseValue = theta * Math.Pow(s.Factor * Math.Max(maxPosition, s.OriginalMaxPositionEmbeddings) / s.OriginalMaxPositionEmbeddings
                                         - (s.Factor - 1), d / (d - 2.0));
        var inv = new double[d / 2];
        for (int j = 0; j < d / 2; j++)
            inv[j] = 1.0 / Math.Pow(baseValue, 2.0 * j / d);
        switch (s.RopeType)
        {
            case RopeScalingType.Linear:
                for (int j = 0; j < inv.Length; j++) inv[j] /= s.Factor;
                break;
            case RopeScalingType.Yarn:
            {
                double Dim(double rotations) => d * Math.Log(s.OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
                double low = Math.Max(Math.Floor(Dim(s.BetaFast)), 0), high = Math.Min(Math.Ceiling(Dim(s.BetaSlow)), d - 1);
                if (low == high) high += 0.001;
                for (int j = 0; j < inv.Length; j++)
                {
                    double ramp = Math.Clamp((j - low) / (high - low), 0, 1);
                    inv[j] = inv[j] / s.Factor * ramp + inv[j] * (1 - ramp);
                }
                m = s.AttentionFactor ?? 0.1 * Math.Log(s.Factor) + 1;
                break;
            }
            case RopeScalingType.Llama3:
                for (int j = 0; j < inv.Length; j++)
                {
                    double wavelength = 2 * Math.PI / inv[j], original = s.OriginalMaxPositionEmbeddings;
                    if (wavelength < original / s.HighFreqFactor) continue;
                    if (wavelength > original / s.LowFreqFactor) { inv[j] /= s.Factor; continue; }
                    double smooth = (original / wavelength - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                    inv[j] = (1 - smooth) * inv[j] / s.Factor + smooth * inv[j];
                }
                break;
        }
        return inv;
    }
}
