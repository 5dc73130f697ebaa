namespace LlmKernels.Cli;

/// <summary>
/// <c>llmk check</c> rows for the activations and GLUs: each activation over a span, and each as
/// the gate of a packed gate-first GLU, against float64, for one ISA. Errors are in ulps of the
/// element type at the reference (floored at its smallest normal); the naive implementation is
/// the textbook formula in f32 (MathF, erf correctly rounded to f32, <c>1 + erf</c> and
/// <c>1 + tanh</c> as written), rounded once to the element type.
/// </summary>
internal static class ActivationCheck
{
    private static readonly int[] s_lengths = [1, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 255, 256, 257, 4099];

    public static int Run(TextWriter output, CpuContext context) =>
        Run<float>(output, context) + Run<Half>(output, context) + Run<BFloat16>(output, context);

    private static int Run<T>(TextWriter output, CpuContext context) where T : unmanaged
    {
        int failures = 0;
        foreach (ActivationFunction f in Enum.GetValues<ActivationFunction>())
            foreach (bool gated in new[] { false, true })
            {
                var total = new ErrorStats();
                var random = new Random(4321);
                foreach (int n in s_lengths)
                    total.Add(Compare<T>(context, random, f, n, gated));
                failures += total.Passes ? 0 : 1;
                string name = gated ? $"glu({Name(f)})" : Name(f);
                output.WriteLine($"{name,-20} {context.Isa.ToString().ToLowerInvariant(),-7} {Elements.Name<T>(),-5} {total.Cases,5} " +
                                 $"{total.MaxError,10:E2} {total.MaxNaiveError,10:E2} {(total.Passes ? "ok" : "FAIL"),7}");
            }
        return failures;
    }

    private static string Name(ActivationFunction f) => f switch
    {
        ActivationFunction.GeluErf => "gelu",
        ActivationFunction.GeluTanh => "gelu_tanh",
        _ => f.ToString().ToLowerInvariant(),
    };

    private static ErrorStats Compare<T>(CpuContext context, Random random, ActivationFunction f, int d, bool gated) where T : unmanaged
    {
        const int tokens = 3;
        var gate = new T[tokens * d];
        var up = new T[tokens * d];
        for (int i = 0; i < gate.Length; i++)
        {
            gate[i] = Elements.FromFloat<T>(-12f + 24f * random.NextSingle());
            up[i] = Elements.FromFloat<T>(gated ? -2f + 4f * random.NextSingle() : 1f);
        }
        var result = new T[tokens * d];
        if (gated)
        {
            var x = new T[tokens * 2 * d];
            for (int t = 0; t < tokens; t++)
            {
                gate.AsSpan(t * d, d).CopyTo(x.AsSpan(t * 2 * d));
                up.AsSpan(t * d, d).CopyTo(x.AsSpan(t * 2 * d + d));
            }
            Kernels.Glu<T>(x, result, d, f, GluLayout.GateFirst, context);
        }
        else
        {
            Kernels.Activation<T>(gate, result, f, context);
        }
        double error = 0, naiveError = 0;
        const double floor = 1.0;
        int mantissa = typeof(T) == typeof(float) ? 23 : typeof(T) == typeof(Half) ? 10 : 7;
        for (int i = 0; i < gate.Length; i++)
        {
            float g = Elements.ToFloat(gate[i]), u = Elements.ToFloat(up[i]);
            double reference = Reference(f, g) * u;
            double ulp = Math.ScaleB(1.0, Math.ILogB(Math.Max(Math.Abs(reference), floor)) - mantissa);
            if (float.IsInfinity(Elements.Round<T>((float)reference)) || double.IsNaN(reference))
                continue; // beyond the element type's range (exp(12) in f16): checked as infinities elsewhere
            error = Math.Max(error, Math.Abs(Elements.ToFloat(result[i]) - reference) / ulp);
            naiveError = Math.Max(naiveError, Math.Abs(Elements.Round<T>(Naive(f, g) * u) - reference) / ulp);
        }
        // atol: the documented f32 bounds (up to 10 ulps for the tanh GELU) plus the product with up;
        // a 16-bit output carries its own rounding and the one-ulp move f32 noise can cause.
        return ErrorStats.One(error, naiveError, typeof(T) == typeof(float) ? 12.0 : 1.5);
    }

    private static float Naive(ActivationFunction f, float x) => f switch
    {
        ActivationFunction.Silu => x / (1f + MathF.Exp(-x)),
        ActivationFunction.GeluErf => 0.5f * x * (1f + (float)(1.0 - Erfc(x / Math.Sqrt(2.0)))),
        ActivationFunction.GeluTanh => 0.5f * x * (1f + MathF.Tanh(0.7978845608f * (x + 0.044715f * x * x * x))),
        ActivationFunction.Relu => MathF.Max(x, 0f),
        ActivationFunction.Sigmoid => 1f / (1f + MathF.Exp(-x)),
        ActivationFunction.Exp => MathF.Exp(x),
        ActivationFunction.Tanh => MathF.Tanh(x),
        _ => (float)(1.0 - Erfc(x)),
    };

    private static double Reference(ActivationFunction f, double x)
    {
        switch (f)
        {
            case ActivationFunction.Silu:
            case ActivationFunction.GeluTanh:
                double z = f == ActivationFunction.Silu ? x : 2.0 * Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * x * x * x);
                double e = Math.Exp(-Math.Abs(z));
                return (z < 0 ? x * e : x) / (1.0 + e);
            case ActivationFunction.GeluErf: return 0.5 * x * Erfc(-x / Math.Sqrt(2.0));
            case ActivationFunction.Relu: return Math.Max(x, 0.0);
            case ActivationFunction.Sigmoid: return (x < 0 ? Math.Exp(x) : 1.0) / (1.0 + Math.Exp(-Math.Abs(x)));
            case ActivationFunction.Exp: return Math.Exp(x);
            case ActivationFunction.Tanh: return Math.Tanh(x);
            default: return 1.0 - Erfc(x);
        }
    }

    /// <summary>erfc in float64: the Maclaurin series of erf below 2.5, Lentz's continued fraction above.</summary>
    private static double Erfc(double x)
    {
        if (x < 0) return 2.0 - Erfc(-x);
        if (x < 2.5)
        {
            double sum = 0, term = x;
            for (int n = 0; n < 200; n++)
            {
                double t = term / (2 * n + 1);
                sum += t;
                if (Math.Abs(t) < 1e-18 * Math.Abs(sum)) break;
                term *= -x * x / (n + 1);
            }
            return 1.0 - 2.0 / Math.Sqrt(Math.PI) * sum;
        }
        if (x > 27) return 0.0;
        double f = x;
        for (int k = 120; k >= 1; k--)
            f = x + k / 2.0 / f;
        return Math.Exp(-x * x) / Math.Sqrt(Math.PI) / f;
    }
}
