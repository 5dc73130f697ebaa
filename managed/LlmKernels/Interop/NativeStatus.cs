namespace LlmKernels.Interop;

/// <summary>
/// The one place a native <see cref="Status"/> becomes a managed exception carrying the native
/// message (LibGit2Sharp's Ensure). Argument errors name the C argument; it is mapped to the C#
/// parameter name where the two differ.
/// </summary>
internal static unsafe class NativeStatus
{
    internal static void ThrowIfFailed(Status status, string function)
    {
        if (status != Status.Ok)
            Throw(status, function);
    }

    internal static string LastError() => Utf8(NativeMethods.LastError());

    internal static string Utf8(byte* text) => text is null ? "" : new string((sbyte*)text);

    private static void Throw(Status status, string function)
    {
        string message = $"{function}: {LastError()} ({Utf8(NativeMethods.StatusName(status))})";
        throw status switch
        {
            Status.ErrInvalidArgument => new ArgumentException(message, ParameterName(LastError(), function)),
            Status.ErrUnsupported => new NotSupportedException(message),
            Status.ErrOutOfMemory => new InsufficientMemoryException(message),
            Status.ErrBusy => new InvalidOperationException(message),
            Status.ErrDevice => new CudaException(message, LastError()),
            _ => new LlmKernelsException(message, status),
        };
    }

    // Native messages start with the argument's C name, with an index where one element is at fault:
    // "x_stride: ...", "slot_mapping[4]: ...", "block_tables[1][2]: ...".
    // The function disambiguates the few C names whose C# parameter differs between entry points. A C name mapped nowhere
    // below becomes its camelCase form ("x_stride": xStride), which is the C# spelling of the raw CUDA overloads (CudaKernels).
    internal static string? ParameterName(string message, string function)
    {
        // The CUDA entry points take the CPU ones' params structs: one table serves both.
        if (function.StartsWith("lk_cuda_", StringComparison.Ordinal))
            function = "lk_" + function["lk_cuda_".Length..];
        int colon = message.IndexOf(':');
        string name = colon > 0 ? message[..colon] : "";
        int bracket = name.IndexOf('[');
        if (bracket > 0)
            name = name[..bracket];
        return name switch
        {
            "" => null,
            "y" => "destination",
            "eps" => "epsilon",
            "num_threads" or "isa" => "options",
            // The paged KV cache (KvCache) and attention: the C# parameter each native argument comes from.
            "slot_mapping" => "slotMapping",
            "block_tables" => "blockTables",
            "seq_lens" => "seqLens",
            "block_mapping" => "blockMapping",
            "max_blocks_per_seq" => "maxBlocksPerSeq",
            // Attention.
            "cu_seqlens_q" => "cuSeqlensQ",
            "cu_seqlens_k" => "cuSeqlensK",
            "seqlens_k" => "seqLensK",
            "out_tokens" => "keyOut",
            "cache.key_cache" => "keyCache",
            "cache.value_cache" => "valueCache",
            _ when name.StartsWith("cache", StringComparison.Ordinal) => "layout",
            // MoE gating (Moe.Gating).
            "num_tokens" => "numTokens",
            "num_experts" => "numExperts",
            "top_k" => "topK",
            "expert_ids" => "expertIds",
            "logits_stride" => "logitsStride",
            "correction_bias" => "correctionBias",
            "num_groups" or "topk_groups" or "scoring" or "flags" or "routed_scaling_factor" => "options",
            // MoE routing, permute and combine (Moe.Routing, Moe.Permute, Moe.Combine).
            "expert_begin" => "expertBegin",
            "expert_end" => "expertEnd",
            "block_size" => "blockSize",
            "expert_counts" => "expertCounts",
            "expert_offsets" => "expertOffsets",
            "sorted_slots" or "sorted_capacity" => "sortedSlots",
            "slot_rows" => "slotRows",
            "block_experts" => "blockExperts",
            "input_stride" => "inputStride",
            "output_stride" => "outputStride",
            "expert_output" => "expertOutput",
            "expert_stride" => "expertStride",
            // The rows are sortedSlots' length in Moe.Permute, what expertOutput holds in Moe.Combine.
            "num_rows" => function == "lk_moe_permute" ? "sortedSlots" : "expertOutput",
            // Names of the CUDA overloads (and the raw CudaKernels ones): the helpers, and what only a raw call passes.
            "bytes" => "length",
            "n" => "length",
            "y_stride" => "destinationStride",
            "weight_dtype" => "weightType",
            "rot_dim" => "rotaryDim",
            "out" => function == "lk_attention" ? "output" : "destination",
            "out_stride" => function == "lk_attention" ? "outputStride" : "destinationStride",
            "scale" or "softcap" or "window_left" or "window_right" => "options",
            _ when name.Contains('_') => CamelCase(name),
            _ => name,
        };
    }

    private static string CamelCase(string snake)
    {
        var text = new System.Text.StringBuilder(snake.Length);
        bool upper = false;
        foreach (char c in snake)
        {
            if (c == '_')
                upper = text.Length > 0;
            else
            {
                text.Append(upper ? char.ToUpperInvariant(c) : c);
                upper = false;
            }
        }
        return text.ToString();
    }
}
