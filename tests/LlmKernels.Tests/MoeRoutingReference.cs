using System.Runtime.InteropServices;

namespace LlmKernels.Tests;

/// <summary>
/// The contracts of <c>lk_moe_routing</c>, <c>lk_moe_permute</c> and <c>lk_moe_combine</c> (native/include/llmkernels.h), written
/// the plain way: the plan expert by expert (each expert's slots found by a scan, then padded), the permute as a row copy, the
/// combine in float64.
/// </summary>
internal static class MoeRoutingReference
{
    /// <summary>A plan: <see cref="Sorted"/> holds the <c>Offsets[^1]</c> rows, <see cref="BlockExperts"/> one id per block (empty
    /// without blocks).</summary>
    internal sealed record Plan(int[] Counts, int[] Offsets, int[] Sorted, int[] SlotRows, int[] BlockExperts);

    internal static Plan Routing(int[] ids, int tokens, int k, int begin, int end, int blockSize)
    {
        int local = end - begin, block = Math.Max(blockSize, 1), slots = tokens * k;
        var counts = new int[local];
        var offsets = new int[local + 1];
        var sorted = new List<int>();
        var slotRows = Enumerable.Repeat(-1, slots).ToArray();
        var blockExperts = new List<int>();
        for (int e = 0; e < local; e++)
        {
            offsets[e] = sorted.Count;
            for (int s = 0; s < slots; s++)
            {
                if (ids[s] == begin + e)
                {
                    slotRows[s] = sorted.Count;
                    sorted.Add(s);
                    counts[e]++;
                }
            }
            while (sorted.Count % block != 0)
                sorted.Add(-1);
            if (blockSize > 1)
                for (int b = offsets[e]; b < sorted.Count; b += block)
                    blockExperts.Add(begin + e);
        }
        offsets[local] = sorted.Count;
        return new Plan(counts, offsets, sorted.ToArray(), slotRows, blockExperts.ToArray());
    }

    /// <summary>Output row r = input row sortedSlots[r] / k, bit for bit; zeros for -1. Only the rows' first
    /// <paramref name="hidden"/> elements are written.</summary>
    internal static void Permute<T>(ReadOnlySpan<T> input, Span<T> output, ReadOnlySpan<int> sortedSlots, int k, int hidden,
                                    int inputStride, int outputStride) where T : unmanaged
    {
        for (int r = 0; r < sortedSlots.Length; r++)
        {
            Span<T> row = output.Slice(r * outputStride, hidden);
            if (sortedSlots[r] < 0)
                row.Clear();
            else
                input.Slice(sortedSlots[r] / k * inputStride, hidden).CopyTo(row);
        }
    }

    /// <summary>Token t's row: the sum of weights[s] x expert row slotRows[s] over its slots s with a row, in float64.</summary>
    internal static double[] Combine<T>(ReadOnlySpan<T> expertOutput, ReadOnlySpan<float> weights, ReadOnlySpan<int> slotRows, int tokens,
                                        int k, int hidden, int expertStride) where T : unmanaged
    {
        var result = new double[tokens * hidden];
        for (int t = 0; t < tokens; t++)
            for (int j = 0; j < k; j++)
            {
                int r = slotRows[t * k + j];
                if (r < 0)
                    continue;
                double w = weights[t * k + j];
                for (int i = 0; i < hidden; i++)
                    result[t * hidden + i] += w * Element.ToFloat(expertOutput[r * expertStride + i]);
            }
        return result;
    }

    /// <summary>The same sum the way the header says the kernel does it: one f32 fused multiply-add per slot and element, in slot
    /// order, rounded once to <typeparamref name="T"/>.</summary>
    internal static T[] CombineF32<T>(ReadOnlySpan<T> expertOutput, ReadOnlySpan<float> weights, ReadOnlySpan<int> slotRows, int tokens,
                                      int k, int hidden, int expertStride) where T : unmanaged
    {
        var result = new T[tokens * hidden];
        for (int t = 0; t < tokens; t++)
            for (int i = 0; i < hidden; i++)
            {
                float a = 0;
                for (int j = 0; j < k; j++)
                {
                    int r = slotRows[t * k + j];
                    if (r >= 0)
                        a = MathF.FusedMultiplyAdd(weights[t * k + j], Element.ToFloat(expertOutput[r * expertStride + i]), a);
                }
                result[t * hidden + i] = Element.FromFloat<T>(a);
            }
        return result;
    }

    /// <summary>Random bits, NaN payloads and all: a copy that goes through floats would change some.</summary>
    internal static T[] RandomBits<T>(Random random, int length) where T : unmanaged
    {
        var values = new T[length];
        random.NextBytes(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    /// <summary>Random ids in [0, experts), any repeats within a token; or, with <paramref name="distinct"/>, k distinct per token.</summary>
    internal static int[] RandomIds(Random random, int tokens, int k, int experts, bool distinct = true)
    {
        var ids = new int[tokens * k];
        int[] all = Enumerable.Range(0, experts).ToArray();
        for (int t = 0; t < tokens; t++)
        {
            if (distinct)
            {
                random.Shuffle(all);
                all.AsSpan(0, k).CopyTo(ids.AsSpan(t * k));
            }
            else
            {
                for (int j = 0; j < k; j++)
                    ids[t * k + j] = random.Next(experts);
            }
        }
        return ids;
    }
}
