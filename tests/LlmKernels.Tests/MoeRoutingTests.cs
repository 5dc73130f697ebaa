using System.Numerics.Tensors;

namespace LlmKernels.Tests;

/// <summary>
/// Moe.Routing on every ISA this CPU runs against <see cref="MoeRoutingReference.Routing"/>: counts, offsets, the stable expert
/// order, padding to blocks with -1 rows, the block experts, the slot rows (the inverse), expert-parallel subsets, skewed and empty
/// experts, empty batches, ids from the gating and ids repeated within a token; outputs longer than needed, and nothing written
/// past what the plan says; the optional outputs; <see cref="Moe.RoutingCapacity"/>; the tensor overload.
/// </summary>
public sealed class MoeRoutingTests
{
    public static TheoryData<CpuIsa> Isas()
    {
        var data = new TheoryData<CpuIsa>();
        foreach (CpuIsa isa in CpuContext.SupportedIsas)
            data.Add(isa);
        return data;
    }

    internal static CpuContext On(CpuIsa isa, int threads = 2) => new(new CpuContextOptions { Isa = isa, ThreadCount = threads });

    /// <summary>What the outputs hold before the call: anything the plan does not write must still hold it.</summary>
    internal const int Sentinel = -12345;

    private const int Extra = 3;

    private static int[] Filled(int length) => Enumerable.Repeat(Sentinel, length).ToArray();

    /// <summary>
    /// One plan with outputs <see cref="Extra"/> elements longer than needed, filled with <see cref="Sentinel"/>: each output
    /// against the reference, the sentinel everywhere past what the plan writes, and the plan's invariants (each local slot in
    /// exactly one row, the slot rows the inverse of the rows' slots, segments padded to whole blocks). Returns the plan.
    /// </summary>
    internal static MoeRoutingReference.Plan Run(CpuContext? context, int[] ids, int tokens, int k, int experts, int blockSize = 0,
                                                int begin = 0, int end = 0, bool withSlotRows = true, bool withBlockExperts = true)
    {
        int last = begin == 0 && end == 0 ? experts : end, local = last - begin, slots = tokens * k, block = Math.Max(blockSize, 1);
        string what = $"Routing tokens {tokens} k {k} E {experts} [{begin}, {last}) block {blockSize}";
        int capacity = Moe.RoutingCapacity(tokens, k, local, blockSize);
        Assert.Equal(slots + local * (block - 1), capacity);
        int[] counts = Filled(local + Extra), offsets = Filled(local + 1 + Extra), sorted = Filled(capacity + Extra);
        int[] slotRows = withSlotRows ? Filled(slots + Extra) : [];
        int[] blockExperts = withBlockExperts && blockSize > 1 ? Filled(capacity / blockSize + Extra) : [];
        Moe.Routing(ids, tokens, k, experts, counts, offsets, sorted, slotRows, blockExperts, blockSize, begin, end, context);

        var expected = MoeRoutingReference.Routing(ids, tokens, k, begin, last, blockSize);
        int rows = expected.Offsets[local];
        Assert.True(expected.Counts.SequenceEqual(counts[..local]), $"{what}: counts [{string.Join(", ", counts)}]");
        Assert.True(expected.Offsets.SequenceEqual(offsets[..(local + 1)]), $"{what}: offsets [{string.Join(", ", offsets)}]");
        Assert.True(expected.Sorted.SequenceEqual(sorted[..rows]), $"{what}: sorted slots differ");
        AssertSentinel(counts[local..], $"{what}: counts past the local experts");
        AssertSentinel(offsets[(local + 1)..], $"{what}: offsets past local + 1");
        AssertSentinel(sorted[rows..], $"{what}: sorted slots past the rows");
        if (withSlotRows)
        {
            Assert.True(expected.SlotRows.SequenceEqual(slotRows[..slots]), $"{what}: slot rows differ");
            AssertSentinel(slotRows[slots..], $"{what}: slot rows past numTokens x topK");
        }
        if (blockExperts.Length > 0)
        {
            Assert.True(expected.BlockExperts.SequenceEqual(blockExperts[..(rows / blockSize)]), $"{what}: block experts differ");
            AssertSentinel(blockExperts[(rows / blockSize)..], $"{what}: block experts past the rows' blocks");
        }

        // The invariants, whatever the reference says.
        Assert.True(rows <= capacity, what);
        var seen = new bool[slots];
        for (int e = 0; e < local; e++)
        {
            Assert.True(offsets[e] % block == 0 && offsets[e + 1] - offsets[e] == (counts[e] + block - 1) / block * block, what);
            for (int r = offsets[e]; r < offsets[e + 1]; r++)
            {
                int s = sorted[r];
                if (r < offsets[e] + counts[e])
                {
                    Assert.True(ids[s] == begin + e && !seen[s], $"{what}: row {r} holds slot {s}");
                    Assert.True(r == offsets[e] || sorted[r - 1] < s, $"{what}: row {r} out of slot order");
                    seen[s] = true;
                    if (withSlotRows)
                        Assert.Equal(r, slotRows[s]);
                }
                else
                {
                    Assert.Equal(-1, s);
                }
            }
        }
        for (int s = 0; s < slots; s++)
            Assert.True(seen[s] == (ids[s] >= begin && ids[s] < last), $"{what}: slot {s} (expert {ids[s]}) placed {seen[s]}");
        return expected;
    }

    private static void AssertSentinel(int[] values, string what) =>
        Assert.True(Array.TrueForAll(values, v => v == Sentinel), $"{what} written: [{string.Join(", ", values)}]");

    // (tokens, k, experts): one expert, Mixtral 2 of 8, Qwen1.5-MoE 4 of 60, OLMoE 8 of 64, DeepSeek-V2 6 of 160, 8 of 256 (most
    // experts empty), Qwen3 8 of 128 over a thousand tokens, k of 1.
    private static readonly (int Tokens, int K, int Experts)[] s_shapes =
        [(1, 1, 1), (3, 1, 4), (300, 2, 8), (37, 4, 60), (17, 8, 64), (64, 6, 160), (5, 8, 256), (1000, 8, 128), (50, 1, 7)];

    private static readonly int[] s_blockSizes = [0, 1, 2, 16, 64];

    [Theory, MemberData(nameof(Isas))]
    public void PlansMatchTheReference(CpuIsa isa)
    {
        using var context = On(isa);
        var random = new Random(100 + (int)isa);
        foreach (var (tokens, k, experts) in s_shapes)
            foreach (int blockSize in s_blockSizes)
            {
                Run(context, MoeRoutingReference.RandomIds(random, tokens, k, experts), tokens, k, experts, blockSize);
                // Repeats within a token are not the gating's, but the plan takes them: each is its own slot.
                Run(context, MoeRoutingReference.RandomIds(random, tokens, k, experts, distinct: false), tokens, k, experts, blockSize);
            }
    }

    [Fact]
    public void SmallPlanByHand()
    {
        // Tokens [1, 0], [0, 1], [1, 2]: slots 0..5 go to experts 1, 0, 0, 1, 1, 2.
        int[] ids = [1, 0, 0, 1, 1, 2];
        var plain = Run(null, ids, 3, 2, 3);
        Assert.Equal([2, 3, 1], plain.Counts);
        Assert.Equal([0, 2, 5, 6], plain.Offsets);
        Assert.Equal([1, 2, 0, 3, 4, 5], plain.Sorted);
        Assert.Equal([2, 0, 1, 3, 4, 5], plain.SlotRows);
        // Padded to blocks of 4: each segment a whole block, -1 in the padding; one expert id per block.
        var padded = Run(null, ids, 3, 2, 3, blockSize: 4);
        Assert.Equal([0, 4, 8, 12], padded.Offsets);
        Assert.Equal([1, 2, -1, -1, 0, 3, 4, -1, 5, -1, -1, -1], padded.Sorted);
        Assert.Equal([4, 0, 1, 5, 6, 8], padded.SlotRows);
        Assert.Equal([0, 1, 2], padded.BlockExperts);
        // Only expert 1 here: the other slots have no row.
        var one = Run(null, ids, 3, 2, 3, begin: 1, end: 2);
        Assert.Equal([3], one.Counts);
        Assert.Equal([0, 3], one.Offsets);
        Assert.Equal([0, 3, 4], one.Sorted);
        Assert.Equal([0, -1, -1, 1, 2, -1], one.SlotRows);
        // Expert 2 of [1, 3) padded to 2: block experts carry the global id.
        var tail = Run(null, ids, 3, 2, 3, blockSize: 2, begin: 1, end: 3);
        Assert.Equal([0, 4, 6], tail.Offsets);
        Assert.Equal([0, 3, 4, -1, 5, -1], tail.Sorted);
        Assert.Equal([1, 1, 2], tail.BlockExperts);
    }

    [Fact]
    public void SkewedAndEmptyExperts()
    {
        const int tokens = 100, k = 2, experts = 8;
        // Every token to experts 3 and 5: the other six segments are empty, and empty segments take no padding.
        int[] ids = Enumerable.Range(0, tokens * k).Select(s => s % 2 == 0 ? 3 : 5).ToArray();
        foreach (int blockSize in s_blockSizes)
        {
            var plan = Run(null, ids, tokens, k, experts, blockSize);
            int padded = blockSize > 1 ? (tokens + blockSize - 1) / blockSize * blockSize : tokens;
            Assert.Equal([0, 0, 0, 0, padded, padded, 2 * padded, 2 * padded, 2 * padded], plan.Offsets);
        }
        // One token, one expert, all of it.
        Run(null, [0], 1, 1, 1, 64);
    }

    [Theory, MemberData(nameof(Isas))]
    public void ExpertParallelSubsetsPartitionTheSlots(CpuIsa isa)
    {
        using var context = On(isa);
        var random = new Random(200 + (int)isa);
        foreach (var (tokens, k, experts, ranks) in new[] { (64, 6, 160, 4), (37, 4, 60, 3), (300, 2, 8, 8), (17, 8, 64, 5) })
            foreach (int blockSize in new[] { 0, 4 })
            {
                int[] ids = MoeRoutingReference.RandomIds(random, tokens, k, experts);
                var owner = Enumerable.Repeat(-1, tokens * k).ToArray();
                for (int rank = 0; rank < ranks; rank++)
                {
                    // Uneven ranges when the ranks do not divide the experts.
                    int begin = rank * experts / ranks, end = (rank + 1) * experts / ranks;
                    var plan = Run(context, ids, tokens, k, experts, blockSize, begin, end);
                    for (int s = 0; s < tokens * k; s++)
                    {
                        if (plan.SlotRows[s] < 0)
                            continue;
                        Assert.Equal(-1, owner[s]);
                        owner[s] = rank;
                    }
                }
                Assert.All(owner, rank => Assert.NotEqual(-1, rank));
            }
        // A range that starts at 0 but is not all experts, a range that ends at the last one, a single expert.
        int[] few = MoeRoutingReference.RandomIds(random, 20, 3, 10);
        Run(context, few, 20, 3, 10, 0, 0, 4);
        Run(context, few, 20, 3, 10, 8, 6, 10);
        Run(context, few, 20, 3, 10, 2, 7, 8);
    }

    [Fact]
    public void EmptyBatchPlansNoRows()
    {
        foreach (int blockSize in s_blockSizes)
        {
            var plan = Run(null, [], 0, 4, 16, blockSize);
            Assert.All(plan.Counts, c => Assert.Equal(0, c));
            Assert.All(plan.Offsets, o => Assert.Equal(0, o));
            Run(null, [], 0, 4, 16, blockSize, 4, 8);
        }
        // Without padding the capacity is 0: empty spans will do for the ids, the slots and the slot rows.
        int[] counts = Filled(16), offsets = Filled(17);
        Moe.Routing(ReadOnlySpan<int>.Empty, 0, 4, 16, counts, offsets, Span<int>.Empty);
        Assert.All(counts, c => Assert.Equal(0, c));
        Assert.All(offsets, o => Assert.Equal(0, o));
    }

    [Fact]
    public void OptionalOutputsAreOptional()
    {
        var random = new Random(7);
        int[] ids = MoeRoutingReference.RandomIds(random, 33, 4, 16);
        Run(null, ids, 33, 4, 16, 8, withSlotRows: false, withBlockExperts: false);
        Run(null, ids, 33, 4, 16, 8, withSlotRows: false);
        Run(null, ids, 33, 4, 16, 8, withBlockExperts: false);
        // Block experts without blocks: ignored, left as they are.
        int capacity = Moe.RoutingCapacity(33, 4, 16, 1);
        int[] blockExperts = Filled(capacity);
        Moe.Routing(ids, 33, 4, 16, new int[16], new int[17], new int[capacity], blockExperts: blockExperts, blockSize: 1);
        AssertSentinel(blockExperts, "block experts with blockSize 1");
        Moe.Routing(ids, 33, 4, 16, new int[16], new int[17], new int[capacity], blockExperts: blockExperts);
        AssertSentinel(blockExperts, "block experts with blockSize 0");
    }

    [Fact]
    public void GatingIdsPlanTheirTokens()
    {
        var random = new Random(11);
        const int tokens = 129, experts = 64, k = 8;
        float[] logits = Element.Random<float>(random, tokens * experts, -4, 4);
        float[] weights = new float[tokens * k];
        int[] ids = new int[tokens * k];
        Moe.Gating<float>(logits, weights, ids, tokens, experts, k);
        Run(null, ids, tokens, k, experts, 16);
        Run(null, ids, tokens, k, experts, 0, 16, 48);
    }

    [Fact]
    public void RoutingCapacityIsTheWorstCase()
    {
        Assert.Equal(0, Moe.RoutingCapacity(0, 1, 1));
        Assert.Equal(24, Moe.RoutingCapacity(3, 8, 256));
        Assert.Equal(24, Moe.RoutingCapacity(3, 8, 256, 1));
        Assert.Equal(3 * 8 + 256 * 63, Moe.RoutingCapacity(3, 8, 256, 64));
        Assert.Equal(15, Moe.RoutingCapacity(0, 8, 1, 16));
        Assert.Equal(int.MaxValue, Moe.RoutingCapacity(int.MaxValue, 1, 1000));
        Assert.Equal(int.MaxValue, Moe.RoutingCapacity(int.MaxValue - 1000, 1, 1000, 2));

        static void Throws(string paramName, Action call) =>
            Assert.Equal(paramName, Assert.Throws<ArgumentOutOfRangeException>(call).ParamName);
        Throws("numTokens", () => Moe.RoutingCapacity(-1, 1, 1));
        Throws("topK", () => Moe.RoutingCapacity(1, 0, 1));
        Throws("topK", () => Moe.RoutingCapacity(1, -2, 1));
        Throws("localExperts", () => Moe.RoutingCapacity(1, 1, 0));
        Throws("localExperts", () => Moe.RoutingCapacity(1, 1, -1));
        Throws("blockSize", () => Moe.RoutingCapacity(1, 1, 1, -1));
        // Past int: the slots alone, or their padding.
        Throws("numTokens", () => Moe.RoutingCapacity(int.MaxValue / 2 + 1, 2, 1));
        Throws("numTokens", () => Moe.RoutingCapacity(int.MaxValue, 8, 1));
        Throws("blockSize", () => Moe.RoutingCapacity(int.MaxValue - 999, 1, 1000, 2));
        Throws("blockSize", () => Moe.RoutingCapacity(1, 1, 256, int.MaxValue));
    }

    [Fact]
    public void TensorOverloadEqualsSpanOverload()
    {
        var random = new Random(13);
        const int tokens = 21, k = 4, experts = 32, blockSize = 8;
        int[] ids = MoeRoutingReference.RandomIds(random, tokens, k, experts);
        int capacity = Moe.RoutingCapacity(tokens, k, 16, blockSize);
        int[] counts1 = new int[16], offsets1 = new int[17], sorted1 = new int[capacity], rows1 = new int[tokens * k], blocks1 = new int[capacity / blockSize];
        int[] counts2 = new int[16], offsets2 = new int[17], sorted2 = new int[capacity], rows2 = new int[tokens * k], blocks2 = new int[capacity / blockSize];
        Moe.Routing(ids, tokens, k, experts, counts1, offsets1, sorted1, rows1, blocks1, blockSize, 8, 24);
        Moe.Routing(new ReadOnlyTensorSpan<int>(ids, [tokens, k]), experts, counts2, offsets2, sorted2, rows2, blocks2, blockSize, 8, 24);
        Assert.Equal(counts1, counts2);
        Assert.Equal(offsets1, offsets2);
        Assert.Equal(sorted1, sorted2);
        Assert.Equal(rows1, rows2);
        Assert.Equal(blocks1, blocks2);
        // An empty batch.
        Moe.Routing(new ReadOnlyTensorSpan<int>(Array.Empty<int>(), [0, k]), experts, counts2, offsets2, sorted2, expertBegin: 8, expertEnd: 24);
        Assert.All(counts2, c => Assert.Equal(0, c));
    }
}
