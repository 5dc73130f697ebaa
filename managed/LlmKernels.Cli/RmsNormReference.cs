namespace LlmKernels.Cli;

/// <summary>RMSNorm in float64 (the reference) and in the naive f32 form, compared with the kernel.</summary>
internal static class RmsNormReference
{
    public static ErrorStats Compare<T>(CpuContext context, Random random, int rows, int hidden, bool fused) where T : unmanaged
    {
        const float eps = 1e-6f;
        var x = new T[rows * hidden];
        var residual = new T[rows * hidden];
        var weight = new T[hidden];
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = Elements.FromFloat<T>(random.NextSingle() * 4 - 2);
            residual[i] = Elements.FromFloat<T>(random.NextSingle() * 4 - 2);
        }
        for (int i = 0; i < hidden; i++)
            weight[i] = Elements.FromFloat<T>(0.5f + random.NextSingle());

        // The input the statistics see: x, or round(residual + x) in the fused form.
        var input = new float[x.Length];
        for (int i = 0; i < x.Length; i++)
            input[i] = fused ? Elements.Round<T>(Elements.ToFloat(residual[i]) + Elements.ToFloat(x[i])) : Elements.ToFloat(x[i]);

        var destination = new T[x.Length];
        destination.AsSpan().Fill(Elements.FromFloat<T>(float.NaN)); // an unwritten output cannot pass
        if (fused)
            Kernels.FusedAddRmsNorm<T>(x, residual, weight, destination, eps, context: context);
        else
            Kernels.RmsNorm<T>(x, weight, destination, eps, context: context);

        double error = 0, naiveError = 0, maxMagnitude = 0;
        for (int r = 0; r < rows; r++)
        {
            double sum = 0;
            float naiveSum = 0;
            for (int i = 0; i < hidden; i++)
            {
                double v = input[r * hidden + i];
                sum += v * v;
                naiveSum += (float)v * (float)v;
            }
            double inv = 1.0 / Math.Sqrt(sum / hidden + eps);
            float naiveInv = 1.0f / MathF.Sqrt(naiveSum / hidden + eps);
            for (int i = 0; i < hidden; i++)
            {
                int k = r * hidden + i;
                double w = Elements.ToFloat(weight[i]);
                double expected = input[k] * inv * w;
                float naive = Elements.Round<T>(input[k] * naiveInv * (float)w);
                double got = Elements.ToFloat(destination[k]);
                error = Math.Max(error, double.IsNaN(got) ? double.PositiveInfinity : Math.Abs(got - expected));
                naiveError = Math.Max(naiveError, Math.Abs(naive - expected));
                maxMagnitude = Math.Max(maxMagnitude, Math.Abs(expected));
                if (fused && Elements.ToFloat(residual[k]) != input[k])
                    error = double.PositiveInfinity; // residual must hold exactly round(residual + x)
            }
        }
        // atol: about eight f32 ulps of the largest output; the 16-bit rounding itself is in naiveError.
        return ErrorStats.One(error, naiveError, maxMagnitude * 1e-6);
    }
}
