namespace LlmKernels.Tests;

/// <summary>
/// The matrix the norm tests sweep: every ISA this CPU runs (not a hard-coded list), weight as T or
/// as f32, with and without Gemma's (1 + w); and the shapes: each ragged hidden 1..257 (two rows,
/// so a row boundary is crossed), 4096, and 64 x 4096 split over two threads.
/// </summary>
internal static class NormCases
{
    internal const float Epsilon = 1e-6f;
    internal const int MaxRaggedHidden = 257;
    internal const int WideHidden = 4096;
    internal const int ThreadedRows = 64;

    internal static TheoryData<CpuIsa, bool, bool> IsaWeightOffset()
    {
        var data = new TheoryData<CpuIsa, bool, bool>();
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
            foreach (bool weightAsFloat in new[] { false, true })
                foreach (bool weightOffsetOne in new[] { false, true })
                    data.Add(isa, weightAsFloat, weightOffsetOne);
        return data;
    }

    /// <summary>(rows, hidden, threads) for one ISA; the last shape is large enough for the context to split rows over threads.</summary>
    internal static IEnumerable<(int Rows, int Hidden, int Threads)> Shapes()
    {
        for (int hidden = 1; hidden <= MaxRaggedHidden; hidden++)
            yield return (2, hidden, 1);
        yield return (2, WideHidden, 1);
        yield return (ThreadedRows, WideHidden, 2);
    }

    /// <summary>Rows at very different scales, so the normalisation itself is exercised.</summary>
    internal static T[] Activations<T>(Random random, int rows, int hidden) where T : unmanaged
    {
        var x = new T[rows * hidden];
        float[] scales = [1f, 0.03f, 8f];
        for (int row = 0; row < rows; row++)
        {
            float scale = scales[row % scales.Length];
            Element.Random<T>(random, hidden, -scale, scale).CopyTo(x, row * hidden);
        }
        return x;
    }

    internal static TWeight[] Weight<TWeight>(Random random, int hidden, bool weightOffsetOne) where TWeight : unmanaged =>
        weightOffsetOne ? Element.Random<TWeight>(random, hidden, -0.5f, 0.5f) : Element.Random<TWeight>(random, hidden, -0.5f, 1.5f);

    internal static T[] Poisoned<T>(int length) where T : unmanaged
    {
        var result = new T[length];
        result.AsSpan().Fill(Element.NaN<T>());
        return result;
    }
}
