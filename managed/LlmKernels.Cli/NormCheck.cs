namespace LlmKernels.Cli;

/// <summary>
/// <c>llmk check</c> rows for LayerNorm and the residual forms (pre-norm LayerNorm, post-norm / DeepNorm for both
/// kinds): float64 statistics on the value the kernel normalises (x, round(residual + x), round(alpha * residual + x)),
/// against the naive f32 two-pass loop, with the same rule and columns as the RMSNorm rows.
/// </summary>
internal static class NormCheck
{
    private static readonly int[] s_hiddenSizes = [1, 2, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 127, 255, 256, 257, 4096];

    /// <summary>DeepNorm's alpha for N = 32 layers, (2N)^(1/4).</summary>
    private const float DeepNormAlpha = 2.8284271f;

    private enum Form { LayerNorm, FusedAddLayerNorm, PostLayerNorm, PostRmsNorm }

    /// <summary>Writes one row per form and element type on <paramref name="context"/>; returns the failed rows.</summary>
    internal static int Run(TextWriter output, CpuContext context) =>
        RunType<float>(output, context) + RunType<Half>(output, context) + RunType<BFloat16>(output, context);

    private static int RunType<T>(TextWriter output, CpuContext context) where T : unmanaged
    {
        int failures = 0;
        foreach (Form form in Enum.GetValues<Form>())
        {
            var total = new ErrorStats();
            var random = new Random(4321);
            foreach (int hidden in s_hiddenSizes)
                total.Add(Compare<T>(context, random, form, rows: 3, hidden));
            total.Add(Compare<T>(context, random, form, rows: 64, hidden: 4096)); // split over threads
            failures += total.Passes ? 0 : 1;
            string name = form switch
            {
                Form.LayerNorm => "layer_norm",
                Form.FusedAddLayerNorm => "fused_add_layer_norm",
                Form.PostLayerNorm => "deepnorm_layer_norm",
                _ => "deepnorm_rms_norm",
            };
            output.WriteLine($"{name,-20} {context.Isa.ToString().ToLowerInvariant(),-7} {Elements.Name<T>(),-5} {total.Cases,5} " +
                             $"{total.MaxError,10:E2} {total.MaxNaiveError,10:E2} {(total.Passes ? "ok" : "FAIL"),7}");
        }
        return failures;
    }

    private static ErrorStats Compare<T>(CpuContext context, Random random, Form form, int rows, int hidden) where T : unmanaged
    {
        const float eps = 1e-5f;
        bool layer = form != Form.PostRmsNorm;
        var x = new T[rows * hidden];
        var residual = new T[rows * hidden];
        var weight = new T[hidden];
        var bias = new T[layer ? hidden : 0];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = Elements.FromFloat<T>(random.NextSingle() * 4 - 2 + 3f); // an offset mean, so the mean matters
            residual[i] = Elements.FromFloat<T>(random.NextSingle() * 4 - 2);
        }
        for (int i = 0; i < hidden; i++)
            weight[i] = Elements.FromFloat<T>(0.5f + random.NextSingle());
        for (int i = 0; i < bias.Length; i++)
            bias[i] = Elements.FromFloat<T>(random.NextSingle() - 0.5f);

        var v = new float[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            float xi = Elements.ToFloat(x[i]), ri = Elements.ToFloat(residual[i]);
            v[i] = form switch
            {
                Form.LayerNorm => xi,
                Form.FusedAddLayerNorm => Elements.Round<T>(ri + xi),
                _ => Elements.Round<T>(DeepNormAlpha * ri + xi),
            };
        }

        var destination = new T[x.Length];
        destination.AsSpan().Fill(Elements.FromFloat<T>(float.NaN)); // an unwritten output cannot pass
        switch (form)
        {
            case Form.LayerNorm: Kernels.LayerNorm<T>(x, weight, bias, destination, eps, context: context); break;
            case Form.FusedAddLayerNorm: Kernels.FusedAddLayerNorm<T>(x, residual, weight, bias, destination, eps, context: context); break;
            case Form.PostLayerNorm: Kernels.PostLayerNorm<T>(x, residual, weight, bias, destination, DeepNormAlpha, eps, context: context); break;
            default: Kernels.PostRmsNorm<T>(x, residual, weight, destination, DeepNormAlpha, eps, context: context); break;
        }

        double error = 0, naiveError = 0, maxMagnitude = 0;
        for (int r = 0; r < rows; r++)
        {
            int start = r * hidden;
            double mean = 0, squares = 0;
            float naiveSum = 0, naiveSquares = 0;
            if (layer)
            {
                for (int i = 0; i < hidden; i++) { mean += v[start + i]; naiveSum += v[start + i]; }
                mean /= hidden;
            }
            float naiveMean = layer ? naiveSum / hidden : 0f;
            for (int i = 0; i < hidden; i++)
            {
                double d = v[start + i] - mean;
                squares += d * d;
                float nd = v[start + i] - naiveMean;
                naiveSquares += nd * nd;
            }
            double rstd = 1.0 / Math.Sqrt(squares / hidden + eps);
            float naiveRstd = 1f / MathF.Sqrt(naiveSquares / hidden + eps);
            for (int i = 0; i < hidden; i++)
            {
                int k = start + i;
                float w = Elements.ToFloat(weight[i]), b = layer ? Elements.ToFloat(bias[i]) : 0f;
                double expected = (v[k] - mean) * rstd * w + b;
                float naive = Elements.Round<T>((v[k] - naiveMean) * naiveRstd * w + b);
                double got = Elements.ToFloat(destination[k]);
                error = Math.Max(error, double.IsNaN(got) ? double.PositiveInfinity : Math.Abs(got - expected));
                naiveError = Math.Max(naiveError, Math.Abs(naive - expected));
                maxMagnitude = Math.Max(maxMagnitude, Math.Abs(expected));
                if (form == Form.FusedAddLayerNorm && Elements.ToFloat(residual[k]) != v[k])
                    error = double.PositiveInfinity; // residual must hold exactly round(residual + x)
            }
        }
        return ErrorStats.One(error, naiveError, maxMagnitude * 1e-6);
    }
}
