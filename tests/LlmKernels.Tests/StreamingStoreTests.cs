using System.Runtime.CompilerServices;

namespace LlmKernels.Tests;

/// <summary>
/// Outputs of 8 MiB and more are written with streaming stores after a scalar head that aligns
/// each row's destination (docs/rms_norm.md). Rows of 4099 elements start at a different alignment
/// each (and the destination starts one element into its buffer), so the head, the streamed body
/// and the tail are all exercised, on every ISA and element type, plain and fused.
/// </summary>
public sealed class StreamingStoreTests
{
    private const int Hidden = 4099;
    private const int StreamingBytes = 8 << 20;

    public static TheoryData<CpuIsa> Cases => new(CpuContext.SupportedIsas);

    [Theory, MemberData(nameof(Cases))]
    public void Float(CpuIsa isa) => Check<float>(isa, weightAsFloat: true);

    [Theory, MemberData(nameof(Cases))]
    public void Half(CpuIsa isa) => Check<System.Half>(isa, weightAsFloat: true);

    [Theory, MemberData(nameof(Cases))]
    public void BFloat16(CpuIsa isa) => Check<LlmKernels.BFloat16>(isa, weightAsFloat: false);

    private static void Check<T>(CpuIsa isa, bool weightAsFloat) where T : unmanaged
    {
        using var context = new CpuContext(new CpuContextOptions { Isa = isa, ThreadCount = 2 });
        int rows = (StreamingBytes + Hidden * Unsafe.SizeOf<T>() - 1) / (Hidden * Unsafe.SizeOf<T>());
        var random = new Random(HashCode.Combine(isa, typeof(T).Name, "streaming") & 0xffff);
        RmsNormTests.Run<T>(context, rows, Hidden, weightAsFloat, weightOffsetOne: false, random, destinationOffset: 1);
        FusedAddRmsNormTests.Run<T>(context, rows, Hidden, weightAsFloat, weightOffsetOne: true, random, destinationOffset: 1);
    }
}
