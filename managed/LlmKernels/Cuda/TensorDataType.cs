using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>
/// The element type of a tensor passed by pointer to <see cref="CudaKernels"/>, where the type is a run-time value (a TorchSharp or
/// ONNX Runtime tensor's dtype) rather than a type argument. Activations are <see cref="Float32"/>, <see cref="Float16"/> or
/// <see cref="BFloat16"/>; RoPE's positions are <see cref="Int32"/> or <see cref="Int64"/>.
/// </summary>
public enum TensorDataType
{
    /// <summary>IEEE 754 binary32: <see cref="float"/>, <c>torch.float32</c>.</summary>
    Float32 = 0,
    /// <summary>IEEE 754 binary16: <see cref="Half"/>, <c>torch.float16</c>.</summary>
    Float16 = 1,
    /// <summary>bfloat16: <see cref="LlmKernels.BFloat16"/>, <c>torch.bfloat16</c>.</summary>
    BFloat16 = 2,
    /// <summary>32-bit signed integers: <see cref="int"/>, <c>torch.int32</c>.</summary>
    Int32 = 3,
    /// <summary>64-bit signed integers: <see cref="long"/>, <c>torch.int64</c>.</summary>
    Int64 = 4,
}

/// <summary>Maps <see cref="TensorDataType"/> to the native types, naming the parameter when it cannot.</summary>
internal static class TensorDataTypes
{
    /// <summary>The <c>lk_dtype</c> of a floating-point <paramref name="type"/>.</summary>
    internal static Dtype Float(TensorDataType type, string name) => type switch
    {
        TensorDataType.Float32 => Dtype.F32,
        TensorDataType.Float16 => Dtype.F16,
        TensorDataType.BFloat16 => Dtype.Bf16,
        _ => throw new ArgumentOutOfRangeException(name, type, "Must be Float32, Float16 or BFloat16."),
    };

    /// <summary>The <c>lk_index_type</c> of an integer <paramref name="type"/>.</summary>
    internal static IndexType Index(TensorDataType type, string name) => type switch
    {
        TensorDataType.Int32 => IndexType.IndexI32,
        TensorDataType.Int64 => IndexType.IndexI64,
        _ => throw new ArgumentOutOfRangeException(name, type, "Must be Int32 or Int64."),
    };

    /// <summary>The <see cref="TensorDataType"/> of a kernel's element type (float, Half, BFloat16).</summary>
    internal static TensorDataType Of<T>() where T : unmanaged => ElementType.Of<T>() switch
    {
        Dtype.F32 => TensorDataType.Float32,
        Dtype.F16 => TensorDataType.Float16,
        _ => TensorDataType.BFloat16,
    };
}
