using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using LlmKernels.Interop;

namespace LlmKernels.Tests;

/// <summary>
/// Every bad argument of Moe.Routing, Moe.Permute and Moe.Combine (span and tensor overloads) is an <see cref="ArgumentException"/>
/// naming its C# parameter, with nothing written: sizes, lengths, strides, overlaps, and the indices only the native library
/// checks (expert ids, sorted slots, slot rows), whose C names <see cref="NativeStatus"/> maps. The native checks behind the
/// managed ones are exercised through the raw bindings, each field's message and mapped name.
/// </summary>
public sealed class MoeRoutingArgumentTests
{
    private const int E = 8, K = 2, Tokens = 5, Block = 4, Slots = Tokens * K;
    private const int Capacity = Slots + E * (Block - 1); // 34
    private const int Sentinel = MoeRoutingTests.Sentinel;

    /// <summary>Valid ids: slot s goes to expert (3 s) mod E.</summary>
    private static int[] Ids() => Enumerable.Range(0, Slots).Select(s => 3 * s % E).ToArray();

    private delegate void RoutingCall(Span<int> counts, Span<int> offsets, Span<int> sorted, Span<int> slotRows, Span<int> blockExperts);

    /// <summary>Runs <paramref name="call"/> on sentinel-filled outputs large enough for the fixture with blocks of 4; asserts an
    /// ArgumentException (or subclass) naming <paramref name="paramName"/> and every output unchanged. Returns the exception.</summary>
    private static ArgumentException RoutingThrows(string paramName, RoutingCall call)
    {
        int[] counts = Filled(E), offsets = Filled(E + 1), sorted = Filled(Capacity), slotRows = Filled(Slots), blocks = Filled(Capacity / Block);
        var e = Assert.ThrowsAny<ArgumentException>(() => call(counts, offsets, sorted, slotRows, blocks));
        Assert.Equal(paramName, e.ParamName);
        foreach (int[] output in new[] { counts, offsets, sorted, slotRows, blocks })
            Assert.True(Array.TrueForAll(output, v => v == Sentinel), $"an output was written by a call that threw ({paramName})");
        return e;
    }

    private static int[] Filled(int length) => Enumerable.Repeat(Sentinel, length).ToArray();

    [Fact]
    public void ValidRoutingCallsWork()
    {
        int[] counts = new int[E], offsets = new int[E + 1], sorted = new int[Capacity], slotRows = new int[Slots], blocks = new int[Capacity / Block];
        Moe.Routing(Ids(), Tokens, K, E, counts, offsets, sorted, slotRows, blocks, Block);
        Assert.Equal(Slots, counts.Sum());
        // Exactly as long as needed, and the ids longer than needed.
        Moe.Routing(Ids().Concat([99]).ToArray(), Tokens, K, E, counts, offsets, sorted.AsSpan(0, Capacity), slotRows, blocks, Block);
        // Expert parallelism: [2, 6) needs 4 counts, 5 offsets and 10 + 4 x 3 slots.
        Moe.Routing(Ids(), Tokens, K, E, counts.AsSpan(0, 4), offsets.AsSpan(0, 5), sorted.AsSpan(0, 22), slotRows, blocks.AsSpan(0, 5),
                    Block, 2, 6);
    }

    [Fact]
    public void BadRoutingSizesNameThem()
    {
        int[] ids = Ids();
        RoutingThrows("numTokens", (c, o, s, r, b) => Moe.Routing(ids, -1, K, E, c, o, s, r, b, Block));
        RoutingThrows("topK", (c, o, s, r, b) => Moe.Routing(ids, Tokens, 0, E, c, o, s, r, b, Block));
        RoutingThrows("topK", (c, o, s, r, b) => Moe.Routing(ids, Tokens, -1, E, c, o, s, r, b, Block));
        RoutingThrows("numExperts", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, 0, c, o, s, r, b, Block));
        RoutingThrows("numExperts", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, -8, c, o, s, r, b, Block));
        RoutingThrows("expertBegin", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b, Block, -1, 4));
        RoutingThrows("expertBegin", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b, Block, E, E));
        RoutingThrows("expertBegin", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b, Block, E + 1, 0));
        RoutingThrows("expertEnd", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b, Block, 3, 0));
        RoutingThrows("expertEnd", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b, Block, 3, 3));
        RoutingThrows("expertEnd", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b, Block, 3, 2));
        RoutingThrows("expertEnd", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b, Block, 3, E + 1));
        RoutingThrows("expertEnd", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b, Block, 0, -1));
        RoutingThrows("blockSize", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b, -1));
        // Plans past int: the slots, or their padding.
        RoutingThrows("numTokens", (c, o, s, r, b) => Moe.Routing(ids, int.MaxValue, K, E, c, o, s, r, b, Block));
        RoutingThrows("blockSize", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b, int.MaxValue / 4));
    }

    [Fact]
    public void ShortRoutingSpansNameThem()
    {
        int[] ids = Ids();
        RoutingThrows("expertIds", (c, o, s, r, b) => Moe.Routing(ids.AsSpan(1), Tokens, K, E, c, o, s, r, b, Block));
        RoutingThrows("expertIds", (c, o, s, r, b) => Moe.Routing(ids, Tokens + 1, K, E, c, o, s, r, b, Block));
        RoutingThrows("expertCounts", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c[1..], o, s, r, b, Block));
        RoutingThrows("expertCounts", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c[..3], o, s, r, b, Block, 2, 6));
        RoutingThrows("expertOffsets", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o[1..], s, r, b, Block));
        RoutingThrows("expertOffsets", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o[..4], s, r, b, Block, 2, 6));
        RoutingThrows("sortedSlots", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s[1..], r, b, Block));
        RoutingThrows("sortedSlots", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s[..(Slots - 1)], r, b));
        RoutingThrows("sortedSlots", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, Span<int>.Empty, r, b));
        RoutingThrows("sortedSlots", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s[..21], r, b, Block, 2, 6));
        RoutingThrows("slotRows", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r[1..], b, Block));
        RoutingThrows("blockExperts", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b[1..], Block));
        RoutingThrows("blockExperts", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b[..4], Block, 2, 6));
        // With no tokens and padding the slots still need the padding's capacity.
        RoutingThrows("sortedSlots", (c, o, s, r, b) => Moe.Routing(ReadOnlySpan<int>.Empty, 0, K, E, c, o, s[..(E * (Block - 1) - 1)], r, b, Block));
    }

    [Fact]
    public void IdsOutOfRangeNameExpertIds()
    {
        foreach (int bad in new[] { E, -1, int.MaxValue, int.MinValue })
            foreach (int at in new[] { 0, Slots / 2, Slots - 1 })
            {
                int[] ids = Ids();
                ids[at] = bad;
                var e = RoutingThrows("expertIds", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b, Block));
                Assert.StartsWith("lk_moe_routing: expert_ids:", e.Message);
                Assert.IsType<ArgumentException>(e);
                // Out of range even when it is not local.
                RoutingThrows("expertIds", (c, o, s, r, b) => Moe.Routing(ids, Tokens, K, E, c, o, s, r, b, 0, 2, 4));
            }
        // An id past numExperts that is fine for a larger numExperts.
        int[] nine = Ids();
        nine[3] = 8;
        RoutingThrows("expertIds", (c, o, s, r, b) => Moe.Routing(nine, Tokens, K, E, c, o, s, r, b));
        Moe.Routing(nine, Tokens, K, E + 1, new int[E + 1], new int[E + 2], new int[Slots]);
        // Ids past numTokens x topK are not read.
        int[] tail = Ids().Concat([-5]).ToArray();
        Moe.Routing(tail, Tokens, K, E, new int[E], new int[E + 1], new int[Slots]);
    }

    [Fact]
    public void RoutingOverlapsNameTheOutput()
    {
        // One buffer for everything: ids at [0, 10), then the outputs wherever each case puts them.
        void Overlap(string paramName, int countsAt, int offsetsAt, int sortedAt, int rowsAt, int blocksAt)
        {
            int[] memory = new int[200];
            memory.AsSpan().Fill(Sentinel);
            Ids().CopyTo(memory, 0);
            int[] before = (int[])memory.Clone();
            var e = Assert.ThrowsAny<ArgumentException>(() =>
                Moe.Routing(memory.AsSpan(0, Slots), Tokens, K, E, memory.AsSpan(countsAt, E), memory.AsSpan(offsetsAt, E + 1),
                            memory.AsSpan(sortedAt, Capacity), memory.AsSpan(rowsAt, Slots), memory.AsSpan(blocksAt, Capacity / Block), Block));
            Assert.Equal(paramName, e.ParamName);
            Assert.Equal(before, memory);
        }
        // Apart: counts 10, offsets 18, sorted 27, slot rows 61, block experts 71 (to 79).
        const int c = 10, o = 18, s = 27, r = 61, b = 71;
        Overlap("expertCounts", Slots - 1, o, s, r, b);
        Overlap("expertOffsets", c, 0, s, r, b);
        Overlap("sortedSlots", c, o, 5, r + 30, b + 30);
        Overlap("slotRows", c, o, s, 9, b);
        Overlap("blockExperts", c, o, s, r, 2);
        Overlap("expertCounts", c, c + E - 1, s, r, b);
        Overlap("expertCounts", c, o, c + 1, r + 30, b + 30);
        Overlap("expertCounts", c, o, s, c + 7, b);
        Overlap("expertCounts", c, o, s, r, c);
        Overlap("expertOffsets", c, o, o + E, r, b);
        Overlap("expertOffsets", c, o, s, o + 3, b);
        Overlap("expertOffsets", c, o, s, r, o + E);
        Overlap("sortedSlots", c, o, s, s + Capacity - 1, b);
        Overlap("sortedSlots", c, o, s, r, s + 20);
        Overlap("slotRows", c, o, s, r, r + Slots - 1);
        // Adjacent is fine, and so is an overlap past the part a call uses (here the sorted slots of a plan without padding).
        int[] memory = new int[200];
        Ids().CopyTo(memory, 0);
        Moe.Routing(memory.AsSpan(0, Slots), Tokens, K, E, memory.AsSpan(c, E), memory.AsSpan(o, E + 1), memory.AsSpan(s, Capacity),
                    memory.AsSpan(r, Slots), memory.AsSpan(b, Capacity / Block), Block);
        Moe.Routing(memory.AsSpan(0, Slots), Tokens, K, E, memory.AsSpan(c, E), memory.AsSpan(o, E + 1), memory.AsSpan(s, Slots + 5),
                    memory.AsSpan(s + Slots, Slots));
    }

    [Fact]
    public void BadRoutingTensorsNameThem()
    {
        int[] ids = Ids();
        RoutingThrows("expertIds", (c, o, s, r, b) => Moe.Routing(new ReadOnlyTensorSpan<int>(ids, [Slots]), E, c, o, s, r, b, Block));
        RoutingThrows("expertIds", (c, o, s, r, b) => Moe.Routing(new ReadOnlyTensorSpan<int>(ids, [Tokens, K, 1]), E, c, o, s, r, b, Block));
        RoutingThrows("expertIds", (c, o, s, r, b) => Moe.Routing(new ReadOnlyTensorSpan<int>(Array.Empty<int>(), [Tokens, 0]), E, c, o, s, r, b));
        RoutingThrows("expertIds", (c, o, s, r, b) => Moe.Routing(new ReadOnlyTensorSpan<int>(new int[Tokens * (K + 1)], 0, [Tokens, K], [K + 1, 1]), E, c, o, s, r, b));
        RoutingThrows("expertIds", (c, o, s, r, b) => Moe.Routing(new ReadOnlyTensorSpan<int>(ids, 0, [Tokens - 1, K], [1, Tokens - 1]), E, c, o, s, r, b));
        ids[7] = E;
        RoutingThrows("expertIds", (c, o, s, r, b) => Moe.Routing(new ReadOnlyTensorSpan<int>(ids, [Tokens, K]), E, c, o, s, r, b, Block));
        RoutingThrows("numExperts", (c, o, s, r, b) => Moe.Routing(new ReadOnlyTensorSpan<int>(Ids(), [Tokens, K]), 0, c, o, s, r, b, Block));
        RoutingThrows("sortedSlots", (c, o, s, r, b) => Moe.Routing(new ReadOnlyTensorSpan<int>(Ids(), [Tokens, K]), E, c, o, s[1..], r, b, Block));
    }

    // ---- permute ----------------------------------------------------------------------------------------------

    private const int Hidden = 4;

    /// <summary>The fixture's plan without padding: its 10 rows' slots.</summary>
    private static int[] Sorted()
    {
        int[] sorted = new int[Slots];
        Moe.Routing(Ids(), Tokens, K, E, new int[E], new int[E + 1], sorted);
        return sorted;
    }

    private static readonly float[] s_input = Enumerable.Range(0, Tokens * Hidden).Select(i => (float)i).ToArray();

    private delegate void PermuteCall(Span<float> output);

    private static ArgumentException PermuteThrows(string paramName, PermuteCall call, int outputLength = Slots * Hidden)
    {
        float[] output = Poisoned.Filled(outputLength);
        var e = Assert.ThrowsAny<ArgumentException>(() => call(output));
        Assert.Equal(paramName, e.ParamName);
        Poisoned.Unchanged(output, "output");
        return e;
    }

    [Fact]
    public void BadPermuteArgumentsNameThem()
    {
        int[] sorted = Sorted();
        Moe.Permute<float>(s_input, new float[Slots * Hidden], sorted, Tokens, K, Hidden);
        Assert.Throws<NotSupportedException>(() => Moe.Permute<double>(new double[Tokens * Hidden], new double[Slots * Hidden], sorted, Tokens, K, Hidden));
        Assert.Throws<NotSupportedException>(() => Moe.Permute<int>(new int[Tokens * Hidden], new int[Slots * Hidden], sorted, Tokens, K, Hidden));
        PermuteThrows("numTokens", o => Moe.Permute<float>(s_input, o, sorted, -1, K, Hidden));
        PermuteThrows("numTokens", o => Moe.Permute<float>(s_input, o, sorted, int.MaxValue, K, Hidden));
        PermuteThrows("topK", o => Moe.Permute<float>(s_input, o, sorted, Tokens, 0, Hidden));
        PermuteThrows("topK", o => Moe.Permute<float>(s_input, o, sorted, Tokens, -2, Hidden));
        PermuteThrows("hidden", o => Moe.Permute<float>(s_input, o, sorted, Tokens, K, 0));
        PermuteThrows("hidden", o => Moe.Permute<float>(s_input, o, sorted, Tokens, K, -4));
        PermuteThrows("inputStride", o => Moe.Permute<float>(s_input, o, sorted, Tokens, K, Hidden, inputStride: -1));
        PermuteThrows("inputStride", o => Moe.Permute<float>(s_input, o, sorted, Tokens, K, Hidden, inputStride: Hidden - 1));
        PermuteThrows("outputStride", o => Moe.Permute<float>(s_input, o, sorted, Tokens, K, Hidden, outputStride: -1));
        PermuteThrows("outputStride", o => Moe.Permute<float>(s_input, o, sorted, Tokens, K, Hidden, outputStride: Hidden - 1));
        PermuteThrows("input", o => Moe.Permute<float>(s_input.AsSpan(1), o, sorted, Tokens, K, Hidden));
        PermuteThrows("input", o => Moe.Permute<float>(s_input, o, sorted, Tokens, K, Hidden, inputStride: Hidden + 1));
        PermuteThrows("input", o => Moe.Permute<float>(s_input, o, sorted, Tokens + 1, K, Hidden));
        PermuteThrows("output", o => Moe.Permute<float>(s_input, o[1..], sorted, Tokens, K, Hidden));
        PermuteThrows("output", o => Moe.Permute<float>(s_input, o, sorted, Tokens, K, Hidden, outputStride: Hidden + 1));
        PermuteThrows("output", o => Moe.Permute<float>(s_input, o, sorted.Concat([0]).ToArray(), Tokens, K, Hidden));
    }

    [Fact]
    public void SortedSlotsOutOfRangeNameSortedSlots()
    {
        foreach (int bad in new[] { Slots, -2, int.MaxValue, int.MinValue })
            foreach (int at in new[] { 0, Slots - 1 })
            {
                int[] sorted = Sorted();
                sorted[at] = bad;
                var e = PermuteThrows("sortedSlots", o => Moe.Permute<float>(s_input, o, sorted, Tokens, K, Hidden));
                Assert.StartsWith("lk_moe_permute: sorted_slots:", e.Message);
                Assert.IsType<ArgumentException>(e);
            }
        // A slot of a token past numTokens: numTokens x topK bounds the slots.
        PermuteThrows("sortedSlots", o => Moe.Permute<float>(s_input, o, Sorted(), Tokens - 1, K, Hidden));
    }

    [Fact]
    public void PermuteOverlapsNameOutput()
    {
        int[] sorted = Sorted();
        float[] shared = Poisoned.Filled(Tokens * Hidden + Slots * Hidden);
        s_input.CopyTo(shared, 0);
        float[] before = (float[])shared.Clone();
        var e = Assert.Throws<ArgumentException>(() =>
            Moe.Permute<float>(shared.AsSpan(0, Tokens * Hidden), shared.AsSpan(Tokens * Hidden - 1, Slots * Hidden), sorted, Tokens, K, Hidden));
        Assert.Equal("output", e.ParamName);
        Assert.Equal(before, shared);
        // The output over the slots it reads (as bytes: int slots, float rows).
        float[] slotsAndRows = new float[Slots + Slots * Hidden];
        MemoryMarshal.Cast<float, int>(slotsAndRows.AsSpan(0, Slots)).Clear();
        e = Assert.Throws<ArgumentException>(() =>
            Moe.Permute<float>(s_input, slotsAndRows.AsSpan(Slots - 1, Slots * Hidden), MemoryMarshal.Cast<float, int>(slotsAndRows.AsSpan(0, Slots)),
                               Tokens, K, Hidden));
        Assert.Equal("output", e.ParamName);
        // Adjacent is fine; so is memory past the rows the call reads and writes.
        Moe.Permute<float>(shared.AsSpan(0, Tokens * Hidden), shared.AsSpan(Tokens * Hidden), sorted, Tokens, K, Hidden);
        float[] wide = new float[Tokens * Hidden + 8];
        s_input.CopyTo(wide, 0);
        Moe.Permute<float>(wide.AsSpan(0, Tokens * Hidden + 4), wide.AsSpan(Tokens * Hidden, 8), [-1, 0], Tokens, K, Hidden);
    }

    [Fact]
    public void BadPermuteTensorsNameThem()
    {
        int[] sorted = Sorted();
        static ReadOnlyTensorSpan<float> Input() => new(s_input, [Tokens, Hidden]);
        PermuteThrows("input", o => Moe.Permute<float>(new ReadOnlyTensorSpan<float>(s_input), new TensorSpan<float>(o, [Slots, Hidden]), sorted, K));
        PermuteThrows("input", o => Moe.Permute<float>(new ReadOnlyTensorSpan<float>(s_input, 0, [Tokens, Hidden / 2], [Hidden, 2]),
                                                       new TensorSpan<float>(o, [Slots, Hidden / 2]), sorted, K));
        PermuteThrows("input", o => Moe.Permute<float>(new ReadOnlyTensorSpan<float>(Array.Empty<float>(), [Tokens, 0]), new TensorSpan<float>(o, [Slots, Hidden]), sorted, K));
        PermuteThrows("input", o => Moe.Permute<float>(new ReadOnlyTensorSpan<float>(s_input, 0, [Tokens, Hidden], [0, 1]), new TensorSpan<float>(o, [Slots, Hidden]), sorted, K));
        PermuteThrows("output", o => Moe.Permute<float>(Input(), new TensorSpan<float>(o, [Slots * Hidden]), sorted, K));
        PermuteThrows("output", o => Moe.Permute<float>(Input(), new TensorSpan<float>(o, [Slots - 1, Hidden], [Hidden, 1]), sorted, K));
        PermuteThrows("output", o => Moe.Permute<float>(Input(), new TensorSpan<float>(o, [Slots / 2, Hidden * 2], [Hidden * 2, 1]), sorted, K));
        PermuteThrows("output", o => Moe.Permute<float>(Input(), new TensorSpan<float>(o, [Slots, Hidden / 2], [Hidden, 2]), sorted, K));
        PermuteThrows("topK", o => Moe.Permute<float>(Input(), new TensorSpan<float>(o, [Slots, Hidden]), sorted, 0));
        sorted[4] = Slots;
        PermuteThrows("sortedSlots", o => Moe.Permute<float>(Input(), new TensorSpan<float>(o, [Slots, Hidden]), sorted, K));
    }

    // ---- combine ----------------------------------------------------------------------------------------------

    /// <summary>The fixture's slot rows, into the 10 rows of <see cref="s_expertOutput"/>.</summary>
    private static int[] SlotRows()
    {
        int[] slotRows = new int[Slots];
        Moe.Routing(Ids(), Tokens, K, E, new int[E], new int[E + 1], new int[Slots], slotRows);
        return slotRows;
    }

    private static readonly float[] s_expertOutput = Enumerable.Range(0, Slots * Hidden).Select(i => MathF.Sin(i)).ToArray();
    private static readonly float[] s_weights = Enumerable.Repeat(0.5f, Slots).ToArray();

    private static ArgumentException CombineThrows(string paramName, PermuteCall call) => PermuteThrows(paramName, call, Tokens * Hidden);

    [Fact]
    public void BadCombineArgumentsNameThem()
    {
        int[] rows = SlotRows();
        float[] x = s_expertOutput, w = s_weights;
        Moe.Combine<float>(x, w, rows, new float[Tokens * Hidden], Tokens, K, Hidden);
        Assert.Throws<NotSupportedException>(() => Moe.Combine<double>(new double[Slots * Hidden], w, rows, new double[Tokens * Hidden], Tokens, K, Hidden));
        CombineThrows("numTokens", o => Moe.Combine<float>(x, w, rows, o, -1, K, Hidden));
        CombineThrows("topK", o => Moe.Combine<float>(x, w, rows, o, Tokens, 0, Hidden));
        CombineThrows("topK", o => Moe.Combine<float>(x, w, rows, o, Tokens, -1, Hidden));
        CombineThrows("topK", o => Moe.Combine<float>(new float[64], new float[33], new int[33], o, 1, Moe.MaxTopK + 1, 1));
        CombineThrows("hidden", o => Moe.Combine<float>(x, w, rows, o, Tokens, K, 0));
        CombineThrows("hidden", o => Moe.Combine<float>(x, w, rows, o, Tokens, K, -1));
        CombineThrows("expertStride", o => Moe.Combine<float>(x, w, rows, o, Tokens, K, Hidden, expertStride: -1));
        CombineThrows("expertStride", o => Moe.Combine<float>(x, w, rows, o, Tokens, K, Hidden, expertStride: Hidden - 1));
        CombineThrows("outputStride", o => Moe.Combine<float>(x, w, rows, o, Tokens, K, Hidden, outputStride: -1));
        CombineThrows("outputStride", o => Moe.Combine<float>(x, w, rows, o, Tokens, K, Hidden, outputStride: Hidden - 1));
        CombineThrows("weights", o => Moe.Combine<float>(x, w.AsSpan(1), rows, o, Tokens, K, Hidden));
        CombineThrows("slotRows", o => Moe.Combine<float>(x, w, rows.AsSpan(1), o, Tokens, K, Hidden));
        CombineThrows("output", o => Moe.Combine<float>(x, w, rows, o[1..], Tokens, K, Hidden));
        CombineThrows("output", o => Moe.Combine<float>(x, w, rows, o, Tokens, K, Hidden, outputStride: Hidden + 1));
        // Rows of expertOutput: a shorter one, or a wider stride, holds fewer rows than the slot rows name.
        CombineThrows("slotRows", o => Moe.Combine<float>(x.AsSpan(1), w, rows, o, Tokens, K, Hidden));
        CombineThrows("slotRows", o => Moe.Combine<float>(x, w, rows, o, Tokens, K, Hidden, expertStride: Hidden + 1));
        CombineThrows("slotRows", o => Moe.Combine<float>(ReadOnlySpan<float>.Empty, w, rows, o, Tokens, K, Hidden));
    }

    [Fact]
    public void SlotRowsOutOfRangeNameSlotRows()
    {
        foreach (int bad in new[] { Slots, -2, int.MaxValue, int.MinValue })
            foreach (int at in new[] { 0, Slots - 1 })
            {
                int[] rows = SlotRows();
                rows[at] = bad;
                var e = CombineThrows("slotRows", o => Moe.Combine<float>(s_expertOutput, s_weights, rows, o, Tokens, K, Hidden));
                Assert.StartsWith("lk_moe_combine: slot_rows:", e.Message);
                Assert.IsType<ArgumentException>(e);
            }
    }

    [Fact]
    public void CombineOverlapsNameOutput()
    {
        int[] rows = SlotRows();
        float[] shared = Poisoned.Filled(Slots * Hidden + Tokens * Hidden);
        s_expertOutput.CopyTo(shared, 0);
        float[] before = (float[])shared.Clone();
        var e = Assert.Throws<ArgumentException>(() =>
            Moe.Combine<float>(shared.AsSpan(0, Slots * Hidden), s_weights, rows, shared.AsSpan(Slots * Hidden - 1, Tokens * Hidden), Tokens, K, Hidden));
        Assert.Equal("output", e.ParamName);
        Assert.Equal(before, shared);
        float[] weightsAndOutput = Poisoned.Filled(Slots + Tokens * Hidden);
        s_weights.CopyTo(weightsAndOutput, 0);
        e = Assert.Throws<ArgumentException>(() =>
            Moe.Combine<float>(s_expertOutput, weightsAndOutput.AsSpan(0, Slots), rows, weightsAndOutput.AsSpan(Slots - 1, Tokens * Hidden), Tokens, K, Hidden));
        Assert.Equal("output", e.ParamName);
        float[] rowsAndOutput = Poisoned.Filled(Slots + Tokens * Hidden);
        rows.CopyTo(MemoryMarshal.Cast<float, int>(rowsAndOutput.AsSpan(0, Slots)));
        e = Assert.Throws<ArgumentException>(() =>
            Moe.Combine<float>(s_expertOutput, s_weights, MemoryMarshal.Cast<float, int>(rowsAndOutput.AsSpan(0, Slots)),
                               rowsAndOutput.AsSpan(Slots - 1, Tokens * Hidden), Tokens, K, Hidden));
        Assert.Equal("output", e.ParamName);
        // Adjacent is fine.
        Moe.Combine<float>(shared.AsSpan(0, Slots * Hidden), s_weights, rows, shared.AsSpan(Slots * Hidden), Tokens, K, Hidden);
    }

    [Fact]
    public void BadCombineTensorsNameThem()
    {
        int[] rows = SlotRows();
        static ReadOnlyTensorSpan<float> X() => new(s_expertOutput, [Slots, Hidden]);
        static ReadOnlyTensorSpan<float> W() => new(s_weights, [Tokens, K]);
        ReadOnlyTensorSpan<int> R() => new(rows, [Tokens, K]);
        CombineThrows("expertOutput", o => Moe.Combine<float>(new ReadOnlyTensorSpan<float>(s_expertOutput), W(), R(), new TensorSpan<float>(o, [Tokens, Hidden])));
        CombineThrows("expertOutput", o => Moe.Combine<float>(new ReadOnlyTensorSpan<float>(Array.Empty<float>(), [Slots, 0]), W(), R(), new TensorSpan<float>(o, [Tokens, Hidden])));
        CombineThrows("expertOutput", o => Moe.Combine<float>(new ReadOnlyTensorSpan<float>(s_expertOutput, 0, [Slots, Hidden / 2], [Hidden, 2]), W(), R(),
                                                              new TensorSpan<float>(o, [Tokens, Hidden])));
        CombineThrows("weights", o => Moe.Combine<float>(X(), new ReadOnlyTensorSpan<float>(s_weights), R(), new TensorSpan<float>(o, [Tokens, Hidden])));
        CombineThrows("weights", o => Moe.Combine<float>(X(), new ReadOnlyTensorSpan<float>(Array.Empty<float>(), [Tokens, 0]), R(), new TensorSpan<float>(o, [Tokens, Hidden])));
        CombineThrows("weights", o => Moe.Combine<float>(new ReadOnlyTensorSpan<float>(new float[33], [33, 1]), new ReadOnlyTensorSpan<float>(new float[33], [1, 33]),
                                                         new ReadOnlyTensorSpan<int>(new int[33], [1, 33]), new TensorSpan<float>(o, [1, 1])));
        CombineThrows("weights", o => Moe.Combine<float>(X(), new ReadOnlyTensorSpan<float>(new float[Tokens * (K + 1)], 0, [Tokens, K], [K + 1, 1]),
                                                         new ReadOnlyTensorSpan<int>(new int[Tokens * (K + 1)], 0, [Tokens, K], [K + 1, 1]), new TensorSpan<float>(o, [Tokens, Hidden])));
        CombineThrows("slotRows", o => Moe.Combine<float>(X(), W(), new ReadOnlyTensorSpan<int>(rows), new TensorSpan<float>(o, [Tokens, Hidden])));
        CombineThrows("slotRows", o => Moe.Combine<float>(X(), W(), new ReadOnlyTensorSpan<int>(rows, [K, Tokens]), new TensorSpan<float>(o, [Tokens, Hidden])));
        CombineThrows("output", o => Moe.Combine<float>(X(), W(), R(), new TensorSpan<float>(o, [Tokens * Hidden])));
        CombineThrows("output", o => Moe.Combine<float>(X(), W(), R(), new TensorSpan<float>(o, [Tokens - 1, Hidden], [Hidden, 1])));
        CombineThrows("output", o => Moe.Combine<float>(X(), W(), R(), new TensorSpan<float>(o, [Tokens, Hidden / 2], [Hidden, 1])));
        CombineThrows("output", o => Moe.Combine<float>(X(), W(), R(), new TensorSpan<float>(o, [Tokens, Hidden / 2], [Hidden, 2])));
        rows[3] = Slots;
        CombineThrows("slotRows", o => Moe.Combine<float>(X(), W(), R(), new TensorSpan<float>(o, [Tokens, Hidden])));
    }

    // ---- the native checks behind the managed ones ------------------------------------------------------------

    /// <summary>Asserts <paramref name="status"/> is an invalid argument whose message starts with <paramref name="field"/>, and that
    /// <see cref="NativeStatus"/> turns it into an ArgumentException naming <paramref name="paramName"/>.</summary>
    private static void Refused(Status status, string function, string field, string paramName)
    {
        Assert.Equal(Status.ErrInvalidArgument, status);
        string message = NativeStatus.LastError();
        Assert.True(message.StartsWith(field + ":", StringComparison.Ordinal), $"'{message}' does not start with '{field}:'");
        var e = Assert.Throws<ArgumentException>(() => NativeStatus.ThrowIfFailed(status, function));
        Assert.StartsWith($"{function}: {field}:", e.Message);
        Assert.Equal(paramName, e.ParamName);
    }

    [Fact]
    public unsafe void NativeRoutingChecksNameTheField()
    {
        int[] ids = Ids(), counts = Filled(E), offsets = Filled(E + 1), sorted = Filled(Capacity), rows = Filled(Slots), blocks = Filled(Capacity / Block);
        using var context = MoeRoutingTests.On(CpuIsa.Auto, 1);
        fixed (int* i = ids)
        fixed (int* c = counts)
        fixed (int* o = offsets)
        fixed (int* s = sorted)
        fixed (int* r = rows)
        fixed (int* b = blocks)
        {
            var valid = new MoeRoutingParams
            {
                ExpertIds = i, NumTokens = Tokens, TopK = K, NumExperts = E, BlockSize = Block, ExpertCounts = c, ExpertOffsets = o,
                SortedSlots = s, SortedCapacity = Capacity, SlotRows = r, BlockExperts = b,
            };
            Status Call(MoeRoutingParams p)
            {
                using var lease = context.Acquire();
                return NativeMethods.MoeRouting(lease.Handle, &p);
            }
            void Bad(string field, string paramName, MoeRoutingParams p)
            {
                Refused(Call(p), "lk_moe_routing", field, paramName);
                foreach (int[] output in new[] { counts, offsets, sorted, rows, blocks })
                    Assert.True(Array.TrueForAll(output, v => v == Sentinel), $"an output written after a refused {field}");
            }
            var p = valid; p.NumTokens = -1; Bad("num_tokens", "numTokens", p);
            p = valid; p.TopK = 0; Bad("top_k", "topK", p);
            p = valid; p.NumExperts = 0; Bad("num_experts", "numExperts", p);
            p = valid; p.ExpertBegin = -1; p.ExpertEnd = 4; Bad("expert_begin", "expertBegin", p);
            p = valid; p.ExpertBegin = 2; p.ExpertEnd = E + 1; Bad("expert_end", "expertEnd", p);
            p = valid; p.BlockSize = -1; Bad("block_size", "blockSize", p);
            p = valid; p.SortedCapacity = Capacity - 1; Bad("sorted_capacity", "sortedSlots", p);
            p = valid; p.ExpertCounts = null; Bad("expert_counts", "expertCounts", p);
            p = valid; p.ExpertOffsets = null; Bad("expert_offsets", "expertOffsets", p);
            p = valid; p.SortedSlots = null; Bad("sorted_slots", "sortedSlots", p);
            p = valid; p.ExpertIds = null; Bad("expert_ids", "expertIds", p);
            p = valid; p.ExpertOffsets = c + 1; Bad("expert_offsets", "expertOffsets", p);
            p = valid; p.SlotRows = s + 3; Bad("slot_rows", "slotRows", p);
            p = valid; p.BlockExperts = r; Bad("block_experts", "blockExperts", p);
            p = valid; p.ExpertCounts = i + 2; Bad("expert_counts", "expertCounts", p);
            ids[6] = E;
            Bad("expert_ids", "expertIds", valid);
            ids[6] = 0;
            // An empty batch without padding needs no ids or slots; the valid call works.
            p = valid; p.NumTokens = 0; p.BlockSize = 0; p.ExpertIds = null; p.SortedSlots = null; p.SortedCapacity = 0;
            Assert.Equal(Status.Ok, Call(p));
            Assert.Equal(Status.Ok, Call(valid));
            Assert.Equal(Slots, counts.Sum());
        }
    }

    [Fact]
    public unsafe void NativePermuteChecksNameTheField()
    {
        int[] slots = Sorted();
        float[] input = (float[])s_input.Clone(), output = Poisoned.Filled(Slots * Hidden);
        using var context = MoeRoutingTests.On(CpuIsa.Auto, 1);
        fixed (float* x = input)
        fixed (float* y = output)
        fixed (int* s = slots)
        {
            var valid = new MoePermuteParams
            {
                Input = x, Output = y, SortedSlots = s, NumTokens = Tokens, TopK = K, NumRows = Slots, Hidden = Hidden, Dtype = Dtype.F32,
            };
            Status Call(MoePermuteParams p)
            {
                using var lease = context.Acquire();
                return NativeMethods.MoePermute(lease.Handle, &p);
            }
            void Bad(string field, string paramName, MoePermuteParams p)
            {
                Refused(Call(p), "lk_moe_permute", field, paramName);
                Poisoned.Unchanged(output, $"output after a refused {field}");
            }
            var p = valid; p.Dtype = (Dtype)7; Bad("dtype", "dtype", p);
            p = valid; p.NumTokens = -1; Bad("num_tokens", "numTokens", p);
            p = valid; p.TopK = 0; Bad("top_k", "topK", p);
            p = valid; p.NumTokens = int.MaxValue; Bad("num_tokens", "numTokens", p);
            p = valid; p.NumRows = -1; Bad("num_rows", "sortedSlots", p);
            p = valid; p.Hidden = 0; Bad("hidden", "hidden", p);
            p = valid; p.InputStride = -1; Bad("input_stride", "inputStride", p);
            p = valid; p.OutputStride = Hidden - 1; Bad("output_stride", "outputStride", p);
            p = valid; p.SortedSlots = null; Bad("sorted_slots", "sortedSlots", p);
            p = valid; p.Output = null; Bad("output", "output", p);
            p = valid; p.Input = null; Bad("input", "input", p);
            p = valid; p.Output = (float*)s + 1; p.NumRows = 2; Bad("output", "output", p);
            p = valid; p.Input = y + 3; Bad("output", "output", p);
            p = valid; p.NumTokens = 4; Bad("sorted_slots", "sortedSlots", p);
            // No rows, or only padding rows, read nothing.
            p = valid; p.NumRows = 0; p.Input = null; p.Output = null; p.SortedSlots = null;
            Assert.Equal(Status.Ok, Call(p));
            int padding = -1;
            p = valid; p.NumRows = 1; p.SortedSlots = &padding; p.Input = null;
            Assert.Equal(Status.Ok, Call(p));
            Assert.Equal(Status.Ok, Call(valid));
        }
    }

    [Fact]
    public unsafe void NativeCombineChecksNameTheField()
    {
        int[] rows = SlotRows();
        float[] x = (float[])s_expertOutput.Clone(), w = (float[])s_weights.Clone(), output = Poisoned.Filled(Tokens * Hidden);
        using var context = MoeRoutingTests.On(CpuIsa.Auto, 1);
        fixed (float* xp = x)
        fixed (float* wp = w)
        fixed (int* rp = rows)
        fixed (float* yp = output)
        {
            var valid = new MoeCombineParams
            {
                ExpertOutput = xp, Weights = wp, SlotRows = rp, Output = yp, NumTokens = Tokens, TopK = K, NumRows = Slots, Hidden = Hidden,
                Dtype = Dtype.F32,
            };
            Status Call(MoeCombineParams p)
            {
                using var lease = context.Acquire();
                return NativeMethods.MoeCombine(lease.Handle, &p);
            }
            void Bad(string field, string paramName, MoeCombineParams p)
            {
                Refused(Call(p), "lk_moe_combine", field, paramName);
                Poisoned.Unchanged(output, $"output after a refused {field}");
            }
            var p = valid; p.Dtype = (Dtype)7; Bad("dtype", "dtype", p);
            p = valid; p.NumTokens = -1; Bad("num_tokens", "numTokens", p);
            p = valid; p.TopK = 0; Bad("top_k", "topK", p);
            p = valid; p.TopK = Moe.MaxTopK + 1; Bad("top_k", "topK", p);
            p = valid; p.NumRows = -1; Bad("num_rows", "expertOutput", p);
            p = valid; p.NumRows = (long)int.MaxValue + 1; Bad("num_rows", "expertOutput", p);
            p = valid; p.Hidden = 0; Bad("hidden", "hidden", p);
            p = valid; p.ExpertStride = -1; Bad("expert_stride", "expertStride", p);
            p = valid; p.OutputStride = Hidden - 1; Bad("output_stride", "outputStride", p);
            p = valid; p.SlotRows = null; Bad("slot_rows", "slotRows", p);
            p = valid; p.Weights = null; Bad("weights", "weights", p);
            p = valid; p.Output = null; Bad("output", "output", p);
            p = valid; p.ExpertOutput = null; Bad("expert_output", "expertOutput", p);
            p = valid; p.Output = (float*)rp + 1; p.NumTokens = 1; Bad("output", "output", p);
            p = valid; p.Output = wp + 1; p.NumTokens = 1; Bad("output", "output", p);
            p = valid; p.ExpertOutput = yp + 2; Bad("output", "output", p);
            p = valid; p.NumRows = Slots - 1; Bad("slot_rows", "slotRows", p);
            // No tokens need no buffers; tokens whose slots are all elsewhere need no expert rows.
            p = valid; p.NumTokens = 0; p.ExpertOutput = null; p.Weights = null; p.SlotRows = null; p.Output = null;
            Assert.Equal(Status.Ok, Call(p));
            int* none = stackalloc int[K];
            none[0] = none[1] = -1;
            p = valid; p.NumTokens = 1; p.SlotRows = none; p.ExpertOutput = null; p.NumRows = 0;
            Assert.Equal(Status.Ok, Call(p));
            Assert.Equal(Status.Ok, Call(valid));
        }
    }
}
