namespace LlmKernels.Peers;

/// <summary>Element types of activation tensors, spelled as in the C ABI (lk_dtype) and the JSON output.</summary>
public enum BenchDtype
{
    F32 = 0,
    F16 = 1,
    Bf16 = 2,
}

public static class BenchDtypeExtensions
{
    public static int Size(this BenchDtype dtype) => dtype == BenchDtype.F32 ? 4 : 2;

    public static string Name(this BenchDtype dtype) => dtype switch
    {
        BenchDtype.F32 => "f32",
        BenchDtype.F16 => "f16",
        BenchDtype.Bf16 => "bf16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    public static BenchDtype Parse(string name) => name.ToLowerInvariant() switch
    {
        "f32" or "float" => BenchDtype.F32,
        "f16" or "half" => BenchDtype.F16,
        "bf16" or "bfloat16" => BenchDtype.Bf16,
        _ => throw new ArgumentException($"unknown dtype '{name}' (f32, f16, bf16)", nameof(name)),
    };
}
