using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using LlmKernels.Interop;

namespace LlmKernels.Tests;

/// <summary>
/// Which CUDA library the tests use. Unless the environment already sets <c>LLMK_CUDA_LIBRARY</c> (empty: the real
/// <c>llmkernels_cuda</c>, for a GPU host; a file: that one), it is set before any test runs to <c>libllmkernels_cuda_emu.so</c>, the
/// CUDA library's sources over a CPU emulator, which the build copies beside the tests on Linux x86-64: so every CUDA test runs
/// here, on one emulated device.
/// </summary>
internal static class CudaTestLibrary
{
    internal static readonly string EmulatorFile = NativeLibraryLoader.FileName("llmkernels_cuda_emu");

    /// <summary>Where the root CMake builds the emulator (LK_CUDA_EMU): there the CUDA tests must run, not skip.</summary>
    internal static bool EmulatorBuildsHere =>
        OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64;

#pragma warning disable CA2255 // The test assembly chooses its CUDA library before any test touches CUDA.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void ChooseLibrary()
    {
        if (EmulatorBuildsHere && Environment.GetEnvironmentVariable(CudaLibrary.OverrideVariable) is null)
            Environment.SetEnvironmentVariable(CudaLibrary.OverrideVariable, EmulatorFile);
    }

    /// <summary>Whether the loaded CUDA library is the emulator (some tests check what only it does, such as its device name).</summary>
    internal static bool IsEmulator => CudaDevice.LibraryPath is string path && Path.GetFileName(path) == EmulatorFile;

    /// <summary>Whether the loaded CUDA library exports <paramref name="entryPoint"/>.</summary>
    internal static bool Exports(string entryPoint) =>
        CudaLibrary.Loaded.Handle != 0 && NativeLibrary.TryGetExport(CudaLibrary.Loaded.Handle, entryPoint, out _);

    /// <summary>Why a CUDA test cannot run here, or null. Where the emulator builds it always runs (and fails with the reason if
    /// CUDA is unavailable: a missing emulator is a broken build, not a reason to skip).</summary>
    internal static string? SkipReason() =>
        CudaDevice.IsAvailable || EmulatorBuildsHere ? null : $"CUDA is not available here ({CudaDevice.UnavailableReason}) and the emulator builds on Linux x86-64 only";
}

/// <summary>A test that needs a CUDA device: the emulator's here, a GPU's on a GPU host.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute() => Skip = CudaTestLibrary.SkipReason();
}

/// <summary>The theory form of <see cref="CudaFactAttribute"/>.</summary>
public sealed class CudaTheoryAttribute : TheoryAttribute
{
    public CudaTheoryAttribute() => Skip = CudaTestLibrary.SkipReason();
}

/// <summary>
/// A test of a kernel family whose CUDA entry point has not landed in every branch yet: it runs as soon as the loaded CUDA library
/// exports <paramref name="entryPoint"/> (the family's sources merged), and until then is skipped saying so. docs/cuda/managed.md
/// lists these tests.
/// </summary>
public sealed class CudaKernelFactAttribute : FactAttribute
{
    public CudaKernelFactAttribute(string entryPoint) => Skip = CudaKernelTest.SkipReason(entryPoint);
}

/// <summary>The theory form of <see cref="CudaKernelFactAttribute"/>.</summary>
public sealed class CudaKernelTheoryAttribute : TheoryAttribute
{
    public CudaKernelTheoryAttribute(string entryPoint) => Skip = CudaKernelTest.SkipReason(entryPoint);
}

internal static class CudaKernelTest
{
    internal static string? SkipReason(string entryPoint)
    {
        if (CudaTestLibrary.SkipReason() is string reason)
            return reason;
        if (!CudaDevice.IsAvailable)
            return null; // runs, and fails saying why CUDA is unavailable
        return CudaTestLibrary.Exports(entryPoint) ? null
            : $"{entryPoint} is not in {CudaDevice.LibraryPath} yet (its kernel family has not merged): runs once it is";
    }
}

/// <summary>
/// The CUDA tests run one at a time: the emulator runs a kernel launch on the calling thread over process-wide scheduler state, so
/// two host threads launching at once corrupt each other's launch (a GPU has no such limit; docs/cuda/managed.md).
/// </summary>
[CollectionDefinition(Name)]
public sealed class CudaCollection
{
    public const string Name = "CUDA device";
}
