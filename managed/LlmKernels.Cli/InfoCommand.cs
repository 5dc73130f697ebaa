using System.Runtime.InteropServices;
using LlmKernels.Interop;

namespace LlmKernels.Cli;

/// <summary><c>llmk info</c>: what this machine has and what LlmKernels will run on it.</summary>
internal static unsafe class InfoCommand
{
    public static int Run(TextWriter output)
    {
        var context = CpuContext.Default;
        byte* brand = stackalloc byte[64];
        NativeStatus.ThrowIfFailed(NativeMethods.CpuBrand(brand, 64), "lk_cpu_brand");
        output.WriteLine($"cpu              {NativeStatus.Utf8(brand)} ({Environment.ProcessorCount} logical cores, {RuntimeInformation.OSDescription.Trim()})");
        output.WriteLine($"isa available    {string.Join(", ", CpuContext.SupportedIsas).ToLowerInvariant()}");
        output.WriteLine($"isa chosen       {context.Isa.ToString().ToLowerInvariant()}{ForcedNote()}");
        output.WriteLine($"threads          {context.ThreadCount}");
        output.WriteLine($"library          llmkernels {NativeStatus.Utf8(NativeMethods.Version())}, ABI {NativeMethods.AbiVersion()} (bindings ABI {NativeConstants.AbiVersion})");
        output.WriteLine($"cuda             {CudaStatus()}");
        if (CudaDevice.LibraryPath is string cudaLibrary)
            output.WriteLine($"cuda library     {cudaLibrary}{CudaOverrideNote()}");
        output.WriteLine($"runtime          .NET {Environment.Version} {RuntimeInformation.ProcessArchitecture}");
        return 0;
    }

    private static string ForcedNote() =>
        Environment.GetEnvironmentVariable("LLMK_ISA") is { Length: > 0 } forced ? $" (LLMK_ISA={forced})" : "";

    private static string CudaOverrideNote() =>
        Environment.GetEnvironmentVariable(CudaLibrary.OverrideVariable) is { Length: > 0 } named ? $" ({CudaLibrary.OverrideVariable}={named})" : "";

    private static string CudaStatus()
    {
        if (!CudaDevice.IsAvailable)
            return $"not available: {CudaDevice.UnavailableReason}";
        var devices = Enumerable.Range(0, CudaDevice.Count).Select(CudaDevice.GetInfo)
            .Select(d => $"{d.Ordinal}: {d.Name} (sm_{d.ComputeCapabilityMajor}{d.ComputeCapabilityMinor}, {d.MultiprocessorCount} SMs, {d.TotalMemoryBytes / (1L << 30)} GiB)");
        return string.Join("; ", devices);
    }
}
