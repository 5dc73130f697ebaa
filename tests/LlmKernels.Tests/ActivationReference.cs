namespace LlmKernels.Tests;

/// <summary>float64 definitions of the activations and the tolerance the activation and GLU tests
/// use: the f32 errors measured in docs/activations.md (at most 10 ulps in f32, GELU's tails as
/// absolute error), one more rounding for the product with up, and for 16-bit outputs the final
/// rounding plus the one-ulp move f32 noise can cause at a rounding boundary.</summary>
internal static class ActivationReference
{
    internal static readonly ActivationFunction[] All = Enum.GetValues<ActivationFunction>();

    internal static double Apply(ActivationFunction f, double x) => f switch
    {
        ActivationFunction.Silu => MulSigmoid(x, x),
        ActivationFunction.GeluTanh => MulSigmoid(x, 2.0 * Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * x * x * x)),
        ActivationFunction.GeluErf => double.IsInfinity(x) ? (x > 0 ? x : 0.0) : 0.5 * x * Erfc(-x / Math.Sqrt(2.0)),
        ActivationFunction.Relu => x < 0 ? 0.0 : x,
        ActivationFunction.Sigmoid => (x < 0 ? Math.Exp(-Math.Abs(x)) : 1.0) / (1.0 + Math.Exp(-Math.Abs(x))),
        ActivationFunction.Exp => Math.Exp(x),
        ActivationFunction.Tanh => Math.Tanh(x),
        ActivationFunction.Erf => double.IsNaN(x) ? x : 1.0 - Erfc(x),
        _ => throw new ArgumentOutOfRangeException(nameof(f)),
    };

    private static double MulSigmoid(double x, double z)
    {
        if (double.IsInfinity(x))
            return x > 0 ? x : 0.0;
        double e = Math.Exp(-Math.Abs(z));
        return (z < 0 ? x * e : x) / (1.0 + e);
    }

    /// <summary>erfc in float64: the Maclaurin series of erf below 2.5 (terms fall fast enough to keep
    /// 1e-15), Lentz's continued fraction above.</summary>
    internal static double Erfc(double x)
    {
        if (double.IsNaN(x)) return x;
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
        // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
        double f = x;
        for (int k = 120; k >= 1; k--)
            f = x + k / 2.0 / f;
        return Math.Exp(-x * x) / Math.Sqrt(Math.PI) / f;
    }

    internal static double Tolerance<T>(ActivationFunction f, double act, double up) where T : unmanaged
    {
        double reference = act * up;
        double f32Ulp = Math.Abs(reference) < 1.1754943508222875e-38 ? Math.ScaleB(1.0, -149) : Element.Ulp<float>(Math.Abs(reference));
        double bound = 12 * f32Ulp;
        if ((f == ActivationFunction.GeluErf || f == ActivationFunction.GeluTanh) && act < 0)
            bound += (Math.Abs(act) * 3e-5 + 1.2e-7) * Math.Abs(up);
        if (typeof(T) != typeof(float))
        {
            double minUlp = typeof(T) == typeof(Half) ? Math.ScaleB(1.0, -24) : Math.ScaleB(1.0, -133);
            bound += Math.Max(Element.Ulp<T>(Math.Abs(reference)), minUlp);
        }
        return bound;
    }

    /// <summary>NaN exactly where the reference is NaN, the same infinity, else within the tolerance.</summary>
    internal static bool Agrees<T>(ActivationFunction f, float got, double act, double up) where T : unmanaged
    {
        double reference = act * up;
        if (double.IsNaN(reference) || float.IsNaN(got)) return double.IsNaN(reference) && float.IsNaN(got);
        float rounded = Element.ToFloat(Element.FromFloat<T>((float)reference));
        if (float.IsInfinity(rounded) || float.IsInfinity(got)) return got == rounded;
        return Math.Abs(got - reference) <= Tolerance<T>(f, act, up);
    }

    /// <summary>Inputs over [-12, 12] with NaN and infinities at every 23rd place.</summary>
    internal static T[] Inputs<T>(Random random, int length, bool specials = true) where T : unmanaged
    {
        T[] x = Element.Random<T>(random, length, -12f, 12f);
        if (specials)
            for (int i = 7; i < length; i += 23)
                x[i] = Element.FromFloat<T>((i / 23 % 3) switch { 0 => float.NaN, 1 => float.PositiveInfinity, _ => float.NegativeInfinity });
        return x;
    }
}
