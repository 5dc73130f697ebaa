namespace LlmKernels.Tests;

/// <summary>
/// RMSNorm twice over: in float64 (the truth) and naively in the kernel's own precision (f32
/// accumulation in order, output rounded to T), whose error against the truth sets the tolerance.
/// </summary>
internal static class RmsNormReference
{
    /// <summary><c>x / sqrt(mean(x^2) + eps) * w</c> (or <c>* (1 + w)</c>) in float64, row by row.</summary>
    internal static double[] Float64(float[] x, float[] weight, float epsilon, bool weightOffsetOne)
    {
        int hidden = weight.Length;
        var y = new double[x.Length];
        for (int row = 0; row < x.Length / hidden; row++)
        {
            double sumSquares = 0;
            for (int i = 0; i < hidden; i++)
                sumSquares += (double)x[row * hidden + i] * x[row * hidden + i];
            double invRms = 1.0 / Math.Sqrt(sumSquares / hidden + epsilon);
            for (int i = 0; i < hidden; i++)
                y[row * hidden + i] = x[row * hidden + i] * invRms * (weightOffsetOne ? 1.0 + weight[i] : weight[i]);
        }
        return y;
    }

    /// <summary>What a straightforward loop computes in <typeparamref name="T"/>: f32 sum in order, one rounding at the end.</summary>
    internal static float[] Naive<T>(float[] x, float[] weight, float epsilon, bool weightOffsetOne) where T : unmanaged
    {
        int hidden = weight.Length;
        var y = new float[x.Length];
        for (int row = 0; row < x.Length / hidden; row++)
        {
            float sumSquares = 0;
            for (int i = 0; i < hidden; i++)
                sumSquares += x[row * hidden + i] * x[row * hidden + i];
            float invRms = 1f / MathF.Sqrt(sumSquares / hidden + epsilon);
            for (int i = 0; i < hidden; i++)
            {
                float w = weightOffsetOne ? 1f + weight[i] : weight[i];
                y[row * hidden + i] = Element.ToFloat(Element.FromFloat<T>(x[row * hidden + i] * invRms * w));
            }
        }
        return y;
    }
}
