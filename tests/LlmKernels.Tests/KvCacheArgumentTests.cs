namespace LlmKernels.Tests;

/// <summary>
/// Every bad input of KvCache.Write, Gather and CopyBlocks throws before anything is written. Shapes,
/// strides and overlaps are checked in C# and name the C# parameter; indices are checked by the native
/// library, whose message names the C argument and the index (the bad index is put last, so a kernel
/// that wrote as it checked would be caught). And the edge cases that are not errors just work.
/// </summary>
public sealed class KvCacheArgumentTests
{
    // 8 slots of 6 elements; blocks of 12.
    private static readonly PagedKvCacheLayout s_layout = new(NumBlocks: 4, BlockSize: 2, NumKvHeads: 2, HeadDim: 3);
    private const int Row = 6, Cache = 48, Tokens = 3;
    private const float Fill = Poisoned.Fill;

    private static void Throws(string paramName, Action action)
    {
        var e = Assert.ThrowsAny<ArgumentException>(action);
        Assert.Equal(paramName, e.ParamName);
    }

    /// <summary>A native index check: an <see cref="ArgumentException"/> whose message names the C argument and, when given, the index
    /// (<c>slot_mapping[2]</c>). Its ParamName is the C# parameter the status funnel maps the C name to.</summary>
    private static void NativeThrows(string cName, string csName, string? index, Action action)
    {
        var e = Assert.Throws<ArgumentException>(action);
        Assert.Contains(cName + (index ?? ""), e.Message);
        Assert.Equal(csName, e.ParamName);
    }


    private static readonly float[] s_key = Enumerable.Range(1, Tokens * Row).Select(i => (float)i).ToArray();
    private static readonly float[] s_value = Enumerable.Range(1, Tokens * Row).Select(i => -(float)i).ToArray();

    /// <summary>Runs a Write on fresh caches and checks it threw as <paramref name="check"/> says and wrote nothing.</summary>
    private static void WriteThrows(Action<Action> check, Action<float[], float[]> call)
    {
        float[] keyCache = Poisoned.Filled(Cache), valueCache = Poisoned.Filled(Cache);
        check(() => call(keyCache, valueCache));
        Poisoned.Unchanged(keyCache, "keyCache");
        Poisoned.Unchanged(valueCache, "valueCache");
    }

    private static Action<Action> Named(string paramName) => action => Throws(paramName, action);

    private static Action<Action> Native(string cName, string csName, string? index = null) =>
        action => NativeThrows(cName, csName, index, action);

    [Fact]
    public void WriteValidEdgeCasesWork()
    {
        float[] keyCache = Poisoned.Filled(Cache), valueCache = Poisoned.Filled(Cache);
        KvCache.Write<float>(keyCache, valueCache, s_layout, ReadOnlySpan<float>.Empty, ReadOnlySpan<float>.Empty, ReadOnlySpan<long>.Empty);
        KvCache.Write<float>(keyCache, valueCache, s_layout, s_key, s_value, new long[] { -1, long.MinValue, -8 });
        Poisoned.Unchanged(keyCache, "keyCache");
        Poisoned.Unchanged(valueCache, "valueCache");
        // The last slot, and a stride of exactly one row given explicitly.
        KvCache.Write<float>(keyCache, valueCache, s_layout, s_key, s_value, new long[] { -1, 7, -1 }, Row, Row);
        Assert.Equal(s_key.AsSpan(Row, Row), keyCache.AsSpan(7 * Row, Row));
        Assert.Equal(s_value.AsSpan(Row, Row), valueCache.AsSpan(7 * Row, Row));
        // Key and value one buffer apart: allowed, they are only read.
        KvCache.Write<float>(keyCache, valueCache, s_layout, s_key, s_key, new long[] { 0, 1, 2 });
        Assert.Equal(s_key.AsSpan(0, Tokens * Row), valueCache.AsSpan(0, Tokens * Row));
    }

    [Fact]
    public void WriteLayoutAndCacheLengthsNameTheirParameter()
    {
        foreach (var bad in new PagedKvCacheLayout[] { new(0, 2, 2, 3), new(4, 0, 2, 3), new(4, 2, 0, 3), new(4, 2, 2, 0), new(-4, 2, 2, 3),
                                                        new(4, -2, 2, 3), new(4, 2, -2, 3), new(4, 2, 2, -3), default,
                                                        new(int.MaxValue, int.MaxValue, int.MaxValue, int.MaxValue), new(1 << 16, 1 << 16, 1, 1) })
            WriteThrows(Named("layout"), (kc, vc) => KvCache.Write<float>(kc, vc, bad, s_key, s_value, new long[] { 0, 1, 2 }));
        WriteThrows(Named("keyCache"), (kc, vc) => KvCache.Write<float>(kc.AsSpan(1), vc, s_layout, s_key, s_value, new long[] { 0, 1, 2 }));
        WriteThrows(Named("keyCache"), (kc, vc) => KvCache.Write<float>(new float[Cache + 1], vc, s_layout, s_key, s_value, new long[] { 0, 1, 2 }));
        WriteThrows(Named("valueCache"), (kc, vc) => KvCache.Write<float>(kc, vc.AsSpan(0, Cache - 1), s_layout, s_key, s_value, new long[] { 0, 1, 2 }));
        WriteThrows(Named("valueCache"), (kc, vc) => KvCache.Write<float>(kc, Span<float>.Empty, s_layout, s_key, s_value, new long[] { 0 }));
        // Checked even when there is nothing to write.
        WriteThrows(Named("keyCache"), (kc, vc) => KvCache.Write<float>(kc.AsSpan(1), vc, s_layout, s_key, s_value, ReadOnlySpan<long>.Empty));
    }

    [Fact]
    public void WriteInputLengthsAndStridesNameTheirParameter()
    {
        long[] slots = [0, 1, 2];
        WriteThrows(Named("key"), (kc, vc) => KvCache.Write<float>(kc, vc, s_layout, s_key.AsSpan(1), s_value, slots));
        WriteThrows(Named("value"), (kc, vc) => KvCache.Write<float>(kc, vc, s_layout, s_key, s_value.AsSpan(0, 2 * Row + 5), slots));
        WriteThrows(Named("key"), (kc, vc) => KvCache.Write<float>(kc, vc, s_layout, s_key, s_value, new long[] { 0, 1, 2, 3 }));
        // 3 tokens 8 apart need 2 x 8 + 6 = 22 elements; 18 are there.
        WriteThrows(Named("key"), (kc, vc) => KvCache.Write<float>(kc, vc, s_layout, s_key, s_value, slots, keyStride: 8));
        WriteThrows(Named("value"), (kc, vc) => KvCache.Write<float>(kc, vc, s_layout, new float[22], s_value, slots, keyStride: 8, valueStride: 7));
        foreach (int stride in new[] { -1, 1, Row - 1, int.MinValue })
        {
            WriteThrows(Named("keyStride"), (kc, vc) => KvCache.Write<float>(kc, vc, s_layout, s_key, s_value, slots, keyStride: stride));
            WriteThrows(Named("valueStride"), (kc, vc) => KvCache.Write<float>(kc, vc, s_layout, s_key, s_value, slots, valueStride: stride));
        }
        Assert.Throws<NotSupportedException>(() => KvCache.Write<double>(new double[Cache], new double[Cache], s_layout, new double[18], new double[18], slots));
        Assert.Throws<NotSupportedException>(() => KvCache.Write<int>(new int[Cache], new int[Cache], s_layout, new int[18], new int[18], slots));
    }

    [Fact]
    public void WriteOverlapsNameTheCache()
    {
        long[] slots = [0, 1, 2];
        var shared = Poisoned.Filled(2 * Cache + 2 * Tokens * Row);
        Throws("keyCache", () => KvCache.Write<float>(shared.AsSpan(0, Cache), shared.AsSpan(Cache, Cache), s_layout, shared.AsSpan(Cache - 1, Tokens * Row), s_value, slots));
        Throws("keyCache", () => KvCache.Write<float>(shared.AsSpan(0, Cache), shared.AsSpan(Cache + 2 * Tokens * Row, Cache), s_layout, s_key, shared.AsSpan(10, Tokens * Row), slots));
        Throws("valueCache", () => KvCache.Write<float>(shared.AsSpan(0, Cache), shared.AsSpan(Cache, Cache), s_layout, shared.AsSpan(2 * Cache), shared.AsSpan(2 * Cache - 3, Tokens * Row), slots));
        Throws("valueCache", () => KvCache.Write<float>(shared.AsSpan(0, Cache), shared.AsSpan(Cache - 1, Cache), s_layout, s_key, s_value, slots));
        Throws("valueCache", () => KvCache.Write<float>(shared.AsSpan(0, Cache), shared.AsSpan(0, Cache), s_layout, s_key, s_value, slots));
        Poisoned.Unchanged(shared, "shared");
    }

    [Fact]
    public void WriteBadSlotsAreNativeErrorsNamingTheToken()
    {
        WriteThrows(Native("slot_mapping", "slotMapping", "[2]"), (kc, vc) => KvCache.Write<float>(kc, vc, s_layout, s_key, s_value, new long[] { 0, 1, 8 }));
        WriteThrows(Native("slot_mapping", "slotMapping", "[2]"), (kc, vc) => KvCache.Write<float>(kc, vc, s_layout, s_key, s_value, new long[] { 3, -1, long.MaxValue }));
        WriteThrows(Native("slot_mapping", "slotMapping", "[2]"), (kc, vc) => KvCache.Write<float>(kc, vc, s_layout, s_key, s_value, new long[] { 5, 6, 1L << 32 }));
        WriteThrows(Native("slot_mapping", "slotMapping", "[2]"), (kc, vc) => KvCache.Write<Half>(
            new Half[Cache], new Half[Cache], s_layout, new Half[18], new Half[18], new long[] { 0, 1, 9 }));
        // Two tokens naming one slot: which one wins would depend on the order.
        WriteThrows(Native("slot_mapping", "slotMapping", "[2]"), (kc, vc) => KvCache.Write<float>(kc, vc, s_layout, s_key, s_value, new long[] { 5, 1, 5 }));
        WriteThrows(Native("slot_mapping", "slotMapping", "[1]"), (kc, vc) => KvCache.Write<float>(kc, vc, s_layout, s_key, s_value, new long[] { 7, 7, -1 }));
    }

    // ---- Gather: 2 sequences, at most 2 blocks (4 tokens) each ----

    private static readonly int[] s_tables = [3, 0, 2, 1];

    private static void GatherThrows(Action<Action> check, Func<float[], float[], int> call, int rows = 8)
    {
        float[] keyOut = Poisoned.Filled(rows * Row), valueOut = Poisoned.Filled(rows * Row);
        check(() => call(keyOut, valueOut));
        Poisoned.Unchanged(keyOut, "keyOut");
        Poisoned.Unchanged(valueOut, "valueOut");
    }

    private static float[] CacheOf(float sign) => Enumerable.Range(0, Cache).Select(i => sign * i).ToArray();

    private static readonly float[] s_keyCache = CacheOf(1), s_valueCache = CacheOf(-1);

    [Fact]
    public void GatherValidEdgeCasesWork()
    {
        float[] keyOut = Poisoned.Filled(8 * Row), valueOut = Poisoned.Filled(8 * Row);
        Assert.Equal(0, KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, ReadOnlySpan<int>.Empty, 2, ReadOnlySpan<int>.Empty, keyOut, valueOut));
        Assert.Equal(0, KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, new[] { -1, 99, 4, -5 }, 2, new[] { 0, 0 }, keyOut, valueOut));
        Assert.Equal(0, KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, new[] { -1, -1 }, 1, new[] { 0, 0 }, Span<float>.Empty, Span<float>.Empty));
        Poisoned.Unchanged(keyOut, "keyOut");
        Poisoned.Unchanged(valueOut, "valueOut");
        // Exactly full: sequence 0 is 4 tokens (blocks 3, 0), sequence 1 is 4 (blocks 2, 1); a longer table is fine.
        Assert.Equal(8, KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, [.. s_tables, 77, 77], 2, new[] { 4, 4 }, keyOut, valueOut));
        int[] slots = [6, 7, 0, 1, 4, 5, 2, 3];
        for (int r = 0; r < 8; r++)
        {
            Assert.Equal(s_keyCache.AsSpan(slots[r] * Row, Row), keyOut.AsSpan(r * Row, Row));
            Assert.Equal(s_valueCache.AsSpan(slots[r] * Row, Row), valueOut.AsSpan(r * Row, Row));
        }
    }

    [Fact]
    public void GatherOfEmptySequencesTakesAnEmptyTable()
    {
        // maxBlocksPerSeq 0: the table has no entries, so the span is empty and its pointer null, as a C caller's might be;
        // key_out and value_out may be null in the same case, and key and value in Write when there are no tokens.
        Assert.Equal(0, KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, ReadOnlySpan<int>.Empty, 0, new[] { 0, 0 }, Span<float>.Empty, Span<float>.Empty));
    }

    [Fact]
    public void GatherShapesNameTheirParameter()
    {
        int[] lens = [3, 2];
        GatherThrows(Named("layout"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, new(4, 2, 2, 0), s_tables, 2, lens, ko, vo));
        GatherThrows(Named("layout"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, default, s_tables, 2, lens, ko, vo));
        GatherThrows(Named("keyCache"), (ko, vo) => KvCache.Gather<float>(s_keyCache.AsSpan(1), s_valueCache, s_layout, s_tables, 2, lens, ko, vo));
        GatherThrows(Named("valueCache"), (ko, vo) => KvCache.Gather<float>(s_keyCache, new float[Cache + Row], s_layout, s_tables, 2, lens, ko, vo));
        GatherThrows(Named("valueCache"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_keyCache, s_layout, s_tables, 2, lens, ko, vo));
        GatherThrows(Named("maxBlocksPerSeq"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, s_tables, -1, lens, ko, vo));
        GatherThrows(Named("blockTables"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, s_tables.AsSpan(0, 3), 2, lens, ko, vo));
        GatherThrows(Named("blockTables"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, s_tables, 3, lens, ko, vo));
        GatherThrows(Named("keyOut"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, s_tables, 2, lens, ko.AsSpan(1), vo.AsSpan(1)));
        GatherThrows(Named("valueOut"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, s_tables, 2, lens, ko, vo.AsSpan(Row)));
        Assert.Throws<NotSupportedException>(() => KvCache.Gather<double>(new double[Cache], new double[Cache], s_layout, s_tables, 2, lens, new double[48], new double[48]));
    }

    [Fact]
    public void GatherOverlapsNameTheOutput()
    {
        int[] lens = [3, 2];
        float[] keyCache = (float[])s_keyCache.Clone(), valueCache = (float[])s_valueCache.Clone();
        var outs = Poisoned.Filled(16 * Row);
        Throws("keyOut", () => KvCache.Gather<float>(keyCache, valueCache, s_layout, s_tables, 2, lens, outs.AsSpan(0, 8 * Row), outs.AsSpan(7 * Row, 8 * Row)));
        Throws("keyOut", () => KvCache.Gather<float>(keyCache, valueCache, s_layout, s_tables, 2, lens, keyCache.AsSpan(0, 8 * Row), outs.AsSpan(0, 8 * Row)));
        Throws("keyOut", () => KvCache.Gather<float>(keyCache, valueCache, s_layout, s_tables, 2, lens, valueCache.AsSpan(Row, 6 * Row), outs.AsSpan(0, 6 * Row)));
        Throws("valueOut", () => KvCache.Gather<float>(keyCache, valueCache, s_layout, s_tables, 2, lens, outs.AsSpan(0, 6 * Row), keyCache.AsSpan(Row, 6 * Row)));
        Throws("valueOut", () => KvCache.Gather<float>(keyCache, valueCache, s_layout, s_tables, 2, lens, outs.AsSpan(0, 6 * Row), valueCache.AsSpan(0, 6 * Row)));
        Poisoned.Unchanged(outs, "outs");
        Assert.Equal(s_keyCache, keyCache);
        Assert.Equal(s_valueCache, valueCache);
    }

    [Fact]
    public void GatherBadLengthsAndBlocksAreNativeErrors()
    {
        // Sequence 1 is bad in each; sequence 0 is fine and would be written by a kernel that checked as it went.
        GatherThrows(Native("seq_lens", "seqLens", "[1]"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, s_tables, 2, new[] { 3, -1 }, ko, vo));
        GatherThrows(Native("seq_lens", "seqLens", "[1]"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, s_tables, 2, new[] { 3, int.MinValue }, ko, vo));
        // 5 tokens need 3 blocks; the table has 2 per sequence.
        GatherThrows(Native("seq_lens", "seqLens", "[1]"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, s_tables, 2, new[] { 2, 5 }, ko, vo));
        GatherThrows(Native("seq_lens", "seqLens", "[1]"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, s_tables, 2, new[] { 2, int.MaxValue }, ko, vo));
        foreach (int bad in new[] { -1, 4, int.MaxValue, int.MinValue })
        {
            // The block is used (token 2 of sequence 1 is in its second block)...
            GatherThrows(Native("block_tables", "blockTables", "[1][1]"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, new[] { 3, 0, 2, bad }, 2, new[] { 3, 3 }, ko, vo));
            GatherThrows(Native("block_tables", "blockTables", "[1][0]"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, new[] { 3, 0, bad, 1 }, 2, new[] { 3, 1 }, ko, vo));
            // ...and unused entries may hold anything.
            float[] keyOut = Poisoned.Filled(8 * Row), valueOut = Poisoned.Filled(8 * Row);
            Assert.Equal(5, KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, new[] { 3, 0, 2, bad }, 2, new[] { 3, 2 }, keyOut, valueOut));
        }
        // 4 + 3 tokens into 6 rows.
        GatherThrows(Native("out_tokens", "keyOut"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, s_tables, 2, new[] { 4, 3 }, ko, vo), rows: 6);
        GatherThrows(Native("out_tokens", "keyOut"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, s_tables, 2, new[] { 1, 1 }, ko, vo), rows: 1);
        GatherThrows(Native("out_tokens", "keyOut"), (ko, vo) => KvCache.Gather<float>(s_keyCache, s_valueCache, s_layout, s_tables, 2, new[] { 1, 0 }, ko, vo), rows: 0);
    }

    // ---- CopyBlocks ----

    private static void CopyThrows(Action<Action> check, Action<float[], float[]> call)
    {
        float[] keyCache = Poisoned.Filled(Cache), valueCache = Poisoned.Filled(Cache);
        // Distinct blocks, so that a copy that happened would show.
        for (int i = 0; i < Cache; i += 12)
        {
            keyCache[i] = i;
            valueCache[i] = -i;
        }
        float[] keyBefore = (float[])keyCache.Clone(), valueBefore = (float[])valueCache.Clone();
        check(() => call(keyCache, valueCache));
        Assert.Equal(keyBefore, keyCache);
        Assert.Equal(valueBefore, valueCache);
    }

    [Fact]
    public void CopyBlocksValidEdgeCasesWork()
    {
        CopyThrows(_ => { }, (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, s_layout, ReadOnlySpan<long>.Empty));
        CopyThrows(_ => { }, (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, s_layout, new long[] { 2, 2 }));
        CopyThrows(_ => { }, (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, s_layout, new long[] { 0, 0, 3, 3, 1, 1 }));
        float[] keyCache = CacheOf(1), valueCache = CacheOf(-1);
        KvCache.CopyBlocks<float>(keyCache, valueCache, s_layout, new long[] { 3, 0, 3, 1 });
        Assert.Equal(s_keyCache.AsSpan(36, 12), keyCache.AsSpan(0, 12));
        Assert.Equal(s_keyCache.AsSpan(36, 12), keyCache.AsSpan(12, 12));
        Assert.Equal(s_valueCache.AsSpan(36, 12), valueCache.AsSpan(0, 12));
        Assert.Equal(s_keyCache.AsSpan(24), keyCache.AsSpan(24));
    }

    [Fact]
    public void CopyBlocksShapesNameTheirParameter()
    {
        CopyThrows(Named("blockMapping"), (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, s_layout, new long[] { 0, 1, 2 }));
        CopyThrows(Named("blockMapping"), (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, s_layout, new long[] { 0 }));
        CopyThrows(Named("layout"), (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, new(4, 2, 2, -3), new long[] { 0, 1 }));
        CopyThrows(Named("layout"), (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, default, ReadOnlySpan<long>.Empty));
        CopyThrows(Named("keyCache"), (kc, vc) => KvCache.CopyBlocks<float>(kc.AsSpan(0, 36), vc, s_layout, new long[] { 0, 1 }));
        CopyThrows(Named("valueCache"), (kc, vc) => KvCache.CopyBlocks<float>(kc, vc.AsSpan(12), s_layout, new long[] { 0, 1 }));
        CopyThrows(Named("valueCache"), (kc, vc) => KvCache.CopyBlocks<float>(kc, kc, s_layout, new long[] { 0, 1 }));
        Assert.Throws<NotSupportedException>(() => KvCache.CopyBlocks<long>(new long[Cache], new long[Cache], s_layout, new long[] { 0, 1 }));
    }

    [Fact]
    public void CopyBlocksBadPairsAreNativeErrorsNamingThePair()
    {
        // The bad pair is the last; the first is fine and would be copied by a kernel that checked as it went.
        foreach (long bad in new[] { -1L, 4L, long.MaxValue, long.MinValue, 1L << 32 })
        {
            CopyThrows(Native("block_mapping", "blockMapping", "[1]"), (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, s_layout, new long[] { 0, 1, bad, 2 }));
            CopyThrows(Native("block_mapping", "blockMapping", "[1]"), (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, s_layout, new long[] { 0, 1, 2, bad }));
        }
        // A destination named twice: the result would depend on the order.
        CopyThrows(Native("block_mapping", "blockMapping", "[1]"), (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, s_layout, new long[] { 0, 1, 2, 1 }));
        CopyThrows(Native("block_mapping", "blockMapping", "[2]"), (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, s_layout, new long[] { 0, 3, 2, 1, 0, 3 }));
        // A block that is the destination of one pair and the source of another, in either order.
        CopyThrows(Native("block_mapping", "blockMapping", "[1][0]"), (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, s_layout, new long[] { 0, 1, 1, 2 }));
        CopyThrows(Native("block_mapping", "blockMapping", "[0][0]"), (kc, vc) => KvCache.CopyBlocks<float>(kc, vc, s_layout, new long[] { 1, 2, 0, 1 }));
    }
}
