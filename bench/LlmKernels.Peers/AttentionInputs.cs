namespace LlmKernels.Peers;

/// <summary>
/// The inputs of one <see cref="AttentionCase"/>, shared by every peer (values from
/// <see cref="TestData"/> in [-1, 1): exact in bf16 and f16, so every peer sees the same numbers):
/// the queries as f32 <c>[total queries, 32, 128]</c>; for a prefill the keys and values as f32
/// <c>[tokens, 8, 128]</c>; for a decode the paged bf16 cache itself (1 GiB of K and V at 32768
/// keys x 8 sequences: kept once, in the form LlmKernels reads, and converted by each peer), its
/// shuffled block table and key counts. The float64 reference is computed once, on first use.
/// </summary>
public sealed unsafe class AttentionInputs : IBenchWorkload
{
    private AttentionReference? _reference;

    private AttentionInputs(AttentionCase @case, ulong seed)
    {
        Case = @case;
        ulong state = seed;
        Q = TestData.Create(@case.QueryElements, -1f, 2f, ref state);
        if (!@case.Decode)
        {
            K = TestData.Create(@case.KvElements, -1f, 2f, ref state);
            V = TestData.Create(@case.KvElements, -1f, 2f, ref state);
            return;
        }

        long blocksPerSeq = (@case.Context + AttentionCase.BlockSize - 1) / AttentionCase.BlockSize;
        Layout = new PagedKvCacheLayout(checked((int)(@case.Batch * blocksPerSeq)), AttentionCase.BlockSize,
                                        (int)AttentionCase.KvHeads, (int)AttentionCase.HeadDim);
        MaxBlocksPerSeq = (int)blocksPerSeq;
        KeyCache = Bf16Cache(Layout.Value.CacheElements, ref state);
        ValueCache = Bf16Cache(Layout.Value.CacheElements, ref state);
        // A shuffled table: consecutive blocks of a sequence are nowhere near each other, as in a
        // cache that has served many requests.
        BlockTables = new NativeBuffer(@case.Batch * blocksPerSeq * sizeof(int));
        int* table = BlockTables.As<int>();
        for (int i = 0; i < Layout.Value.NumBlocks; i++)
            table[i] = i;
        for (long i = Layout.Value.NumBlocks - 1; i > 0; i--)
        {
            state ^= state >> 12; state ^= state << 25; state ^= state >> 27;
            long j = (long)((state * 0x2545F4914F6CDD1DUL) % (ulong)(i + 1));
            (table[i], table[j]) = (table[j], table[i]);
        }
        SeqLens = new NativeBuffer(@case.Batch * sizeof(int));
        for (long s = 0; s < @case.Batch; s++)
            SeqLens.As<int>()[s] = (int)@case.Context;
    }

    public static AttentionInputs Create(AttentionCase @case, ulong seed = TestData.DefaultSeed) => new(@case, seed);

    public AttentionCase Case { get; }
    IBenchCase IBenchWorkload.Case => Case;

    /// <summary>[total queries, 32 * 128] f32.</summary>
    public NativeBuffer Q { get; }

    /// <summary>Prefill: [tokens, 8 * 128] f32 keys; null for a decode.</summary>
    public NativeBuffer? K { get; }

    /// <summary>Prefill: [tokens, 8 * 128] f32 values; null for a decode.</summary>
    public NativeBuffer? V { get; }

    /// <summary>Decode: the cache's shape; every sequence's blocks, nothing spare.</summary>
    public PagedKvCacheLayout? Layout { get; }

    /// <summary>Decode: the bf16 key cache [num_blocks, 16, 8, 128].</summary>
    public NativeBuffer? KeyCache { get; }

    /// <summary>Decode: the bf16 value cache, laid out as the key cache.</summary>
    public NativeBuffer? ValueCache { get; }

    /// <summary>Decode: [batch, MaxBlocksPerSeq] int32, a permutation of every block.</summary>
    public NativeBuffer? BlockTables { get; }

    public int MaxBlocksPerSeq { get; }

    /// <summary>Decode: [batch] int32, every one the context length.</summary>
    public NativeBuffer? SeqLens { get; }

    /// <summary>
    /// Key <paramref name="j"/> of sequence <paramref name="seq"/>, kv head <paramref name="kvHead"/>
    /// (head_dim values), as f32: from the contiguous keys or through the block table.
    /// </summary>
    public void KeyHead(long seq, long j, long kvHead, Span<float> destination) => Head(KeyCache, K, seq, j, kvHead, destination);

    public void ValueHead(long seq, long j, long kvHead, Span<float> destination) => Head(ValueCache, V, seq, j, kvHead, destination);

    /// <summary>Decode: the bf16 row (8 heads of 128) of key or value <paramref name="j"/> of sequence <paramref name="seq"/> in <paramref name="cache"/>.</summary>
    public ushort* CacheRow(NativeBuffer cache, long seq, long j)
    {
        int block = BlockTables!.As<int>()[seq * MaxBlocksPerSeq + j / AttentionCase.BlockSize];
        long slot = (long)block * AttentionCase.BlockSize + j % AttentionCase.BlockSize;
        return cache.As<ushort>() + slot * AttentionCase.KvHeads * AttentionCase.HeadDim;
    }

    private void Head(NativeBuffer? cache, NativeBuffer? contiguous, long seq, long j, long kvHead, Span<float> destination)
    {
        const long row = AttentionCase.KvHeads * AttentionCase.HeadDim;
        if (cache is not null)
        {
            ushort* head = CacheRow(cache, seq, j) + kvHead * AttentionCase.HeadDim;
            for (int d = 0; d < AttentionCase.HeadDim; d++)
                destination[d] = Bf16Codec.Decode(head[d]);
        }
        else
        {
            new ReadOnlySpan<float>(contiguous!.As<float>() + (seq * Case.Context + j) * row + kvHead * AttentionCase.HeadDim,
                                    (int)AttentionCase.HeadDim).CopyTo(destination);
        }
    }

    /// <summary>The float64 reference of the checked queries, computed on first use (seconds: it is shared by every peer).</summary>
    public AttentionReference Reference => _reference ??= AttentionReference.Compute(this);

    public IBenchPeer Create(string peer, int threads, CpuContext context) => AttentionPeers.Create(peer, this, threads, context);

    public CheckResult Check(IBenchPeer peer) => AttentionCheck.Run((IAttentionPeer)peer, this);

    /// <summary>A bf16 buffer of <paramref name="count"/> <see cref="TestData"/> values, filled in blocks on every core.</summary>
    private static NativeBuffer Bf16Cache(long count, ref ulong state)
    {
        const long block = 1 << 20;
        var buffer = new NativeBuffer(count * sizeof(ushort));
        ulong seed = state;
        ushort* data = buffer.As<ushort>();
        Parallel.For(0, (count + block - 1) / block, () => new NativeBuffer(block * sizeof(float)), (b, _, scratch) =>
        {
            ulong blockState = seed ^ (0xD1B54A32D192ED03UL * (ulong)(b + 1));
            long n = Math.Min(block, count - b * block);
            TestData.Fill(scratch.As<float>(), n, -1f, 2f, ref blockState);
            Bf16Rows.Narrow(scratch.As<float>(), data + b * block, n); // exact: TestData values are bf16 values
            return scratch;
        }, scratch => scratch.Dispose());
        state = seed * 0x2545F4914F6CDD1DUL + 1;
        return buffer;
    }

    public void Dispose()
    {
        Q.Dispose();
        K?.Dispose();
        V?.Dispose();
        KeyCache?.Dispose();
        ValueCache?.Dispose();
        BlockTables?.Dispose();
        SeqLens?.Dispose();
    }
}
