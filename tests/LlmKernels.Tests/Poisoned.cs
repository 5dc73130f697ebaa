namespace LlmKernels.Tests;

/// <summary>Output buffers filled with a marker value, to prove a call that threw wrote nothing.</summary>
internal static class Poisoned
{
    public const float Fill = 0.75f;

    public static float[] Filled(int length)
    {
        var values = new float[length];
        values.AsSpan().Fill(Fill);
        return values;
    }

    public static void Unchanged(float[] values, string what) =>
        Assert.True(Array.TrueForAll(values, v => v == Fill), $"{what} was written by a call that threw.");
}
