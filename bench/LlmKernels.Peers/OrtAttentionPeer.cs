using Microsoft.ML.OnnxRuntime.Tensors;

namespace LlmKernels.Peers;

/// <summary>
/// Attention as ONNX Runtime's CPU execution provider computes it: a one-node model of
/// <c>GroupQueryAttention</c> (com.microsoft; num_heads 32, kv_num_heads 8, scale 1/sqrt(128),
/// local_window_size -1, do_rotary 0, softcap 0) made by bench/models/make_models.py, always causal.
/// query [batch, tokens, 32 * 128] and key, value [batch, tokens, 8 * 128] (BSNH), seqlens_k
/// (total - 1 per sequence) and total_sequence_length int32. A prefill passes no past (present_key
/// and present_value [1, 8, tokens, 128] are written too, and counted); a decode passes each
/// sequence's new token as key and value and its context as past_key / past_value
/// <c>[batch, 8, context, 128]</c> (BNSH, ONNX Runtime's past layout), bound as present_key /
/// present_value too, so ONNX Runtime appends the token in place rather than copying the past.
/// float or MLFloat16 only: a bf16 row runs f16.
/// </summary>
public sealed unsafe class OrtAttentionPeer : IAttentionPeer
{
    private readonly OrtModel _model;
    private readonly NativeBuffer _output;

    public OrtAttentionPeer(AttentionInputs inputs, BenchDtype dtype, int threads)
    {
        Dtype = dtype;
        Threads = threads;
        var c = inputs.Case;
        const long dim = AttentionCase.HeadDim, kvRow = AttentionCase.KvHeads * dim, qRow = AttentionCase.QHeads * dim;
        _model = new OrtModel($"{c.Kernel}_{dtype.Name()}.onnx", threads);
        var type = OrtModel.ElementType(dtype);
        long batch = c.Batch, tokens = c.QueryTokens;
        try
        {
            _model.BindInput("query", inputs.Q.As<float>(), c.QueryElements, dtype, [batch, tokens, qRow]);
            var seqlens = new NativeBuffer(batch * sizeof(int));
            for (long b = 0; b < batch; b++)
                seqlens.As<int>()[b] = (int)c.Context - 1;
            _model.BindInput("seqlens_k", seqlens, TensorElementType.Int32, [batch]);
            var total = new NativeBuffer(sizeof(int));
            *total.As<int>() = (int)c.Context;
            _model.BindInput("total_sequence_length", total, TensorElementType.Int32, []);
            _output = _model.BindOutput("output", c.QueryElements * dtype.Size(), type, [batch, tokens, qRow]);

            if (!c.Decode)
            {
                _model.BindInput("key", inputs.K!.As<float>(), c.KvElements, dtype, [batch, tokens, kvRow]);
                _model.BindInput("value", inputs.V!.As<float>(), c.KvElements, dtype, [batch, tokens, kvRow]);
                _model.BindOutput("present_key", c.KvElements * dtype.Size(), type, [batch, AttentionCase.KvHeads, tokens, dim]);
                _model.BindOutput("present_value", c.KvElements * dtype.Size(), type, [batch, AttentionCase.KvHeads, tokens, dim]);
                return;
            }

            long[] past = [batch, AttentionCase.KvHeads, c.Context, dim];
            foreach (var (input, pastName, presentName, cache) in new[]
                     {
                         ("key", "past_key", "present_key", inputs.KeyCache!),
                         ("value", "past_value", "present_value", inputs.ValueCache!),
                     })
            {
                var latest = new NativeBuffer(batch * kvRow * dtype.Size());
                var bnsh = new NativeBuffer(c.KvElements * dtype.Size());
                Parallel.For(0, batch * AttentionCase.KvHeads, pair =>
                {
                    long b = pair / AttentionCase.KvHeads, kvHead = pair % AttentionCase.KvHeads;
                    for (long j = 0; j < c.Context; j++)
                    {
                        ushort* head = inputs.CacheRow(cache, b, j) + kvHead * dim;
                        long at = ((b * AttentionCase.KvHeads + kvHead) * c.Context + j) * dim;
                        for (long d = 0; d < dim; d++)
                            Elements.Store(bnsh.Pointer, at + d, dtype, Bf16Codec.Decode(head[d]));
                    }
                    ushort* last = inputs.CacheRow(cache, b, c.Context - 1) + kvHead * dim;
                    for (long d = 0; d < dim; d++)
                        Elements.Store(latest.Pointer, b * kvRow + kvHead * dim + d, dtype, Bf16Codec.Decode(last[d]));
                });
                _model.BindInput(input, latest, type, [batch, 1, kvRow]);
                _model.BindInput(pastName, bnsh, type, past);
                _model.BindOutput(presentName, bnsh, type, past);
            }
        }
        catch
        {
            _model.Dispose();
            throw;
        }
    }

    public string Name => PeerNames.OnnxRuntime;
    public BenchDtype Dtype { get; }
    public int Threads { get; }
    public void* Output => _output.Pointer;

    public void Run() => _model.Run();

    public void Reset() { } // the past holds the same token at the context's last position before and after a call

    public void Dispose() => _model.Dispose();
}
