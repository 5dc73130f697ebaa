using System.Runtime.InteropServices;

namespace LlmKernels.Tests;

/// <summary>
/// KvCache.Write, Gather and CopyBlocks on every ISA this CPU runs, for float, Half and BFloat16,
/// against a managed reference, bit for bit: the calls copy rows, so the caches and inputs are
/// random bytes (NaN payloads included) and every other row keeps its poison. Write: shuffled slots
/// with padding, contiguous, strided and fused-qkv inputs. Gather: block sizes 1, 16 and 32, shuffled
/// non-contiguous block tables with garbage past each sequence's blocks, a block shared by two
/// sequences, sequences of 0, 1, ragged and long lengths. CopyBlocks: one source to two destinations,
/// a source that is its own destination, many pairs at once.
/// </summary>
public sealed class KvCacheTests
{
    private const byte Poison = 0xA5;

    public static TheoryData<CpuIsa> Isas => new(CpuContext.SupportedIsas);

    [Theory, MemberData(nameof(Isas))]
    public void WriteFloat(CpuIsa isa) => Write<float>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void WriteHalf(CpuIsa isa) => Write<Half>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void WriteBFloat16(CpuIsa isa) => Write<BFloat16>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void GatherFloat(CpuIsa isa) => Gather<float>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void GatherHalf(CpuIsa isa) => Gather<Half>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void GatherBFloat16(CpuIsa isa) => Gather<BFloat16>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void CopyBlocksFloat(CpuIsa isa) => CopyBlocks<float>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void CopyBlocksHalf(CpuIsa isa) => CopyBlocks<Half>(isa);

    [Theory, MemberData(nameof(Isas))]
    public void CopyBlocksBFloat16(CpuIsa isa) => CopyBlocks<BFloat16>(isa);

    [Fact]
    public void LayoutSizes()
    {
        var layout = new PagedKvCacheLayout(NumBlocks: 5, BlockSize: 16, NumKvHeads: 8, HeadDim: 128);
        Assert.Equal(80, layout.SlotCount);
        Assert.Equal(1024, layout.RowElements);
        Assert.Equal(16 * 1024, layout.BlockElements);
        Assert.Equal(5 * 16 * 1024, layout.CacheElements);
        Assert.Equal(1L << 62, new PagedKvCacheLayout(1 << 30, 1 << 30, 1 << 2, 1).CacheElements);
        Assert.Throws<OverflowException>(() => new PagedKvCacheLayout(int.MaxValue, int.MaxValue, int.MaxValue, int.MaxValue).CacheElements);
    }

    private static readonly PagedKvCacheLayout[] s_writeLayouts =
    [
        new(9, 16, 2, 64), new(40, 1, 1, 8), new(5, 32, 4, 128), new(3, 16, 8, 128), new(12, 16, 1, 3), new(64, 16, 2, 32),
        new(64, 16, 8, 128), // enough rows for every thread
    ];

    private static void Write<T>(CpuIsa isa) where T : unmanaged
    {
        using var context = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 4 });
        var random = new Random(HashCode.Combine(isa, typeof(T).Name, "write") & 0xffff);
        foreach (PagedKvCacheLayout layout in s_writeLayouts)
        {
            int slots = (int)layout.SlotCount;
            foreach (int tokens in new[] { 1, slots / 2, slots })
                foreach (var (keyPad, valuePad) in new[] { (0, 0), (5, 0), (0, 3), (7, 11) })
                    WriteOnce<T>(context, random, layout, tokens, keyPad, valuePad, fused: false);
            WriteOnce<T>(context, random, layout, slots / 3 + 1, 0, 0, fused: true);
        }
    }

    /// <summary>
    /// <paramref name="tokens"/> real tokens to distinct shuffled slots, with padding tokens (negative slots) among them;
    /// key and value <paramref name="keyPad"/> and <paramref name="valuePad"/> elements longer than a row, or both slices of one
    /// fused qkv buffer.
    /// </summary>
    private static void WriteOnce<T>(CpuContext context, Random random, PagedKvCacheLayout layout, int tokens, int keyPad, int valuePad,
                                     bool fused) where T : unmanaged
    {
        int row = (int)layout.RowElements;
        var what = $"Write<{typeof(T).Name}> {context.Isa} {layout} tokens {tokens} pads {keyPad}/{valuePad}{(fused ? " fused" : "")}";

        int[] slots = Shuffled(random, (int)layout.SlotCount);
        var slotMapping = new List<long>();
        for (int t = 0; t < tokens; t++)
        {
            if (random.Next(4) == 0)
                slotMapping.Add(random.Next(3) switch { 0 => -1, 1 => long.MinValue, _ => -random.NextInt64(2, long.MaxValue) });
            slotMapping.Add(slots[t]);
        }
        slotMapping.Insert(0, -1);
        long[] mapping = slotMapping.ToArray();
        int n = mapping.Length;

        T[] keys, values;
        int keyOffset, valueOffset, keyStride, valueStride;
        if (fused)
        {
            int qRow = 2 * row + 1, stride = qRow + 2 * row;
            keys = values = RandomBits<T>(random, n * stride);
            (keyOffset, valueOffset, keyStride, valueStride) = (qRow, qRow + row, stride, stride);
        }
        else
        {
            (keyStride, valueStride) = (row + keyPad, row + valuePad);
            keys = RandomBits<T>(random, (n - 1) * keyStride + row);
            values = RandomBits<T>(random, (n - 1) * valueStride + row);
            (keyOffset, valueOffset) = (0, 0);
        }
        ReadOnlySpan<T> key = keys.AsSpan(keyOffset), value = values.AsSpan(valueOffset);

        T[] keyCache = Poisoned<T>((int)layout.CacheElements), valueCache = Poisoned<T>((int)layout.CacheElements);
        T[] expectedKey = (T[])keyCache.Clone(), expectedValue = (T[])valueCache.Clone();
        for (int t = 0; t < n; t++)
        {
            if (mapping[t] < 0)
                continue;
            key.Slice(t * keyStride, row).CopyTo(expectedKey.AsSpan((int)mapping[t] * row, row));
            value.Slice(t * valueStride, row).CopyTo(expectedValue.AsSpan((int)mapping[t] * row, row));
        }
        T[] keysBefore = (T[])keys.Clone(), valuesBefore = (T[])values.Clone();

        KvCache.Write<T>(keyCache, valueCache, layout, key, value, mapping,
                         keyPad == 0 && !fused ? 0 : keyStride, valuePad == 0 && !fused ? 0 : valueStride, context);

        AssertBits(expectedKey, keyCache, row, what + " keyCache");
        AssertBits(expectedValue, valueCache, row, what + " valueCache");
        AssertBits(keysBefore, keys, row, what + " key (input)");
        AssertBits(valuesBefore, values, row, what + " value (input)");
    }

    private static readonly (int KvHeads, int HeadDim)[] s_gatherShapes = [(2, 64), (1, 3), (4, 32)];

    private static void Gather<T>(CpuIsa isa) where T : unmanaged
    {
        using var context = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 4 });
        var random = new Random(HashCode.Combine(isa, typeof(T).Name, "gather") & 0xffff);
        foreach (int blockSize in new[] { 1, 16, 32 })
            foreach (var (kvHeads, headDim) in s_gatherShapes)
            {
                GatherOnce<T>(context, random, blockSize, kvHeads, headDim, [0, 1, 37, 2 * blockSize, blockSize + 1, 0, 5, blockSize]);
                GatherOnce<T>(context, random, blockSize, kvHeads, headDim, [300, 3 * blockSize - 1]);
                GatherOnce<T>(context, random, blockSize, kvHeads, headDim, [700, 513, 0, 31]);
                GatherOnce<T>(context, random, blockSize, kvHeads, headDim, [1]);
                GatherOnce<T>(context, random, blockSize, kvHeads, headDim, [0, 0]);
                GatherOnce<T>(context, random, blockSize, kvHeads, headDim, []);
            }
    }

    /// <summary>
    /// A cache of random bits with just enough blocks (plus spares) for distinct shuffled block tables, except that the second
    /// sequence shares the third's first block (a shared prefix); table entries past a sequence's blocks hold garbage that
    /// must not be read; the output has three spare rows that must keep their poison.
    /// </summary>
    private static void GatherOnce<T>(CpuContext context, Random random, int blockSize, int kvHeads, int headDim, int[] seqLens)
        where T : unmanaged
    {
        int[] blocksUsed = Array.ConvertAll(seqLens, length => (length + blockSize - 1) / blockSize);
        int maxBlocksPerSeq = blocksUsed.Length == 0 ? 1 : blocksUsed.Max() + 2;
        var layout = new PagedKvCacheLayout(blocksUsed.Sum() + 5, blockSize, kvHeads, headDim);
        int row = (int)layout.RowElements;
        var what = $"Gather<{typeof(T).Name}> {context.Isa} {layout} seqLens [{string.Join(", ", seqLens)}]";

        int[] ids = Shuffled(random, layout.NumBlocks);
        var blockTables = new int[seqLens.Length * maxBlocksPerSeq];
        int next = 0;
        for (int s = 0; s < seqLens.Length; s++)
            for (int b = 0; b < maxBlocksPerSeq; b++)
                blockTables[s * maxBlocksPerSeq + b] = b < blocksUsed[s] ? ids[next++]
                                                     : random.Next(3) switch { 0 => -1, 1 => int.MaxValue, _ => layout.NumBlocks };
        if (seqLens.Length >= 3 && blocksUsed[1] > 0 && blocksUsed[2] > 0)
            blockTables[maxBlocksPerSeq] = blockTables[2 * maxBlocksPerSeq];

        T[] keyCache = RandomBits<T>(random, (int)layout.CacheElements), valueCache = RandomBits<T>(random, (int)layout.CacheElements);
        int total = seqLens.Sum(), capacity = total + 3;
        T[] keyOut = Poisoned<T>(capacity * row), valueOut = Poisoned<T>(capacity * row);
        T[] expectedKey = (T[])keyOut.Clone(), expectedValue = (T[])valueOut.Clone();
        int outRow = 0;
        for (int s = 0; s < seqLens.Length; s++)
            for (int i = 0; i < seqLens[s]; i++, outRow++)
            {
                int slot = blockTables[s * maxBlocksPerSeq + i / blockSize] * blockSize + i % blockSize;
                keyCache.AsSpan(slot * row, row).CopyTo(expectedKey.AsSpan(outRow * row, row));
                valueCache.AsSpan(slot * row, row).CopyTo(expectedValue.AsSpan(outRow * row, row));
            }
        T[] keyCacheBefore = (T[])keyCache.Clone(), valueCacheBefore = (T[])valueCache.Clone();

        int gathered = KvCache.Gather<T>(keyCache, valueCache, layout, blockTables, maxBlocksPerSeq, seqLens, keyOut, valueOut, context);

        Assert.Equal(total, gathered);
        AssertBits(expectedKey, keyOut, row, what + " keyOut");
        AssertBits(expectedValue, valueOut, row, what + " valueOut");
        AssertBits(keyCacheBefore, keyCache, row, what + " keyCache (input)");
        AssertBits(valueCacheBefore, valueCache, row, what + " valueCache (input)");
    }

    private static void CopyBlocks<T>(CpuIsa isa) where T : unmanaged
    {
        using var context = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 4 });
        var random = new Random(HashCode.Combine(isa, typeof(T).Name, "copy") & 0xffff);
        foreach (PagedKvCacheLayout layout in new PagedKvCacheLayout[] { new(12, 16, 2, 64), new(7, 1, 1, 3), new(9, 32, 4, 32) })
        {
            int[] b = Shuffled(random, layout.NumBlocks);
            // b[0] feeds two destinations; b[6] is its own destination.
            CopyOnce<T>(context, random, layout, [b[0], b[3], b[1], b[4], b[0], b[5], b[6], b[6]]);
            CopyOnce<T>(context, random, layout, [b[2], b[2]]);
            CopyOnce<T>(context, random, layout, [b[1], b[0]]);
        }
        // Enough pairs for every thread.
        var many = new PagedKvCacheLayout(128, 16, 4, 64);
        int[] ids = Shuffled(random, many.NumBlocks);
        var pairs = new long[128];
        for (int p = 0; p < 64; p++)
            (pairs[2 * p], pairs[2 * p + 1]) = (ids[p], ids[64 + p]);
        CopyOnce<T>(context, random, many, pairs);
    }

    private static void CopyOnce<T>(CpuContext context, Random random, PagedKvCacheLayout layout, long[] blockMapping) where T : unmanaged
    {
        int row = (int)layout.RowElements, block = (int)layout.BlockElements;
        var what = $"CopyBlocks<{typeof(T).Name}> {context.Isa} {layout} pairs [{string.Join(", ", blockMapping)}]";
        T[] keyCache = RandomBits<T>(random, (int)layout.CacheElements), valueCache = RandomBits<T>(random, (int)layout.CacheElements);
        T[] expectedKey = (T[])keyCache.Clone(), expectedValue = (T[])valueCache.Clone();
        for (int p = 0; p < blockMapping.Length; p += 2)
        {
            int src = (int)blockMapping[p], dst = (int)blockMapping[p + 1];
            keyCache.AsSpan(src * block, block).CopyTo(expectedKey.AsSpan(dst * block, block));
            valueCache.AsSpan(src * block, block).CopyTo(expectedValue.AsSpan(dst * block, block));
        }

        KvCache.CopyBlocks<T>(keyCache, valueCache, layout, blockMapping, context);

        AssertBits(expectedKey, keyCache, row, what + " keyCache");
        AssertBits(expectedValue, valueCache, row, what + " valueCache");
    }

    private static int[] Shuffled(Random random, int count)
    {
        int[] values = Enumerable.Range(0, count).ToArray();
        random.Shuffle(values);
        return values;
    }

    internal static T[] RandomBits<T>(Random random, int length) where T : unmanaged
    {
        var values = new T[length];
        random.NextBytes(MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    internal static T[] Poisoned<T>(int length) where T : unmanaged
    {
        var values = new T[length];
        MemoryMarshal.AsBytes(values.AsSpan()).Fill(Poison);
        return values;
    }

    /// <summary>Bit for bit equal, or a failure naming the first row and element that differ.</summary>
    internal static void AssertBits<T>(ReadOnlySpan<T> expected, ReadOnlySpan<T> actual, int row, string what) where T : unmanaged
    {
        Assert.Equal(expected.Length, actual.Length);
        ReadOnlySpan<byte> e = MemoryMarshal.AsBytes(expected), a = MemoryMarshal.AsBytes(actual);
        int firstByte = e.CommonPrefixLength(a);
        if (firstByte == e.Length)
            return;
        int size = e.Length / Math.Max(expected.Length, 1), i = firstByte / size;
        Assert.Fail($"{what}: row {i / row} element {i % row} is {Hex(a.Slice(i * size, size))}, expected {Hex(e.Slice(i * size, size))}" +
                    $" ({e.Length - firstByte} bytes from there on, poison is {Poison:X2}).");
    }

    private static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexString(bytes);
}
