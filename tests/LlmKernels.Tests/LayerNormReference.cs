namespace LlmKernels.Tests;

/// <summary>
/// LayerNorm references over rows of <c>weight.Length</c> (or <c>hidden</c>) elements: float64 math on the
/// given (already rounded) inputs, and the naive f32 two-pass loop rounded to T once (the tolerance's yardstick).
/// A null weight is 1 and a null bias 0.
/// </summary>
internal static class LayerNormReference
{
    internal static double[] Float64(float[] v, int hidden, float[]? weight, float[]? bias, float epsilon, bool weightOffsetOne)
    {
        var y = new double[v.Length];
        for (int row = 0; row < v.Length / hidden; row++)
        {
            int start = row * hidden;
            double mean = 0, squares = 0;
            for (int i = 0; i < hidden; i++) mean += v[start + i];
            mean /= hidden;
            for (int i = 0; i < hidden; i++) squares += (v[start + i] - mean) * (v[start + i] - mean);
            double rstd = 1.0 / Math.Sqrt(squares / hidden + epsilon);
            for (int i = 0; i < hidden; i++)
            {
                double w = weight is null ? 1.0 : weightOffsetOne ? 1.0 + weight[i] : weight[i];
                y[start + i] = (v[start + i] - mean) * rstd * w + (bias is null ? 0.0 : bias[i]);
            }
        }
        return y;
    }

    internal static float[] Naive<T>(float[] v, int hidden, float[]? weight, float[]? bias, float epsilon, bool weightOffsetOne)
        where T : unmanaged
    {
        var y = new float[v.Length];
        for (int row = 0; row < v.Length / hidden; row++)
        {
            int start = row * hidden;
            float sum = 0, squares = 0;
            for (int i = 0; i < hidden; i++) sum += v[start + i];
            float mean = sum / hidden;
            for (int i = 0; i < hidden; i++) squares += (v[start + i] - mean) * (v[start + i] - mean);
            float rstd = 1f / MathF.Sqrt(squares / hidden + epsilon);
            for (int i = 0; i < hidden; i++)
            {
                float t = (v[start + i] - mean) * rstd;
                if (weight is not null) t *= weightOffsetOne ? 1f + weight[i] : weight[i];
                if (bias is not null) t += bias[i];
                y[start + i] = Element.ToFloat(Element.FromFloat<T>(t));
            }
        }
        return y;
    }

    /// <summary>The shapes the LayerNorm and residual-form tests sweep: every SIMD boundary up to 257, 4096, and a threaded split.</summary>
    internal static IEnumerable<(int Rows, int Hidden, int Threads)> Shapes()
    {
        foreach (int hidden in new[] { 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257 })
            yield return (3, hidden, 1);
        yield return (2, NormCases.WideHidden, 1);
        yield return (NormCases.ThreadedRows, NormCases.WideHidden, 2);
    }
}
