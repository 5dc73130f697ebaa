using LlmKernels.Interop;

namespace LlmKernels.Tests;

/// <summary>
/// Which CUDA library loads and why none does: LLMK_CUDA_LIBRARY (a path, or a file name looked for where the native libraries
/// are), its absence (llmkernels_cuda, not built here), and each reason CudaDevice gives. The tests' own process loads the
/// emulator through the override (CudaTestLibrary); the other cases are probed without touching this process's choice.
/// </summary>
[Collection(CudaCollection.Name)]
public sealed class CudaLibraryTests
{
    [CudaFact]
    public void TheTestsRunOnTheLibraryTheOverrideNames()
    {
        Assert.True(CudaDevice.IsAvailable, CudaDevice.UnavailableReason);
        Assert.Null(CudaDevice.UnavailableReason);
        string? overrideValue = Environment.GetEnvironmentVariable(CudaLibrary.OverrideVariable);
        Assert.NotNull(CudaDevice.LibraryPath);
        if (!string.IsNullOrEmpty(overrideValue))
            Assert.Equal(Path.GetFileName(overrideValue), Path.GetFileName(CudaDevice.LibraryPath));
        if (CudaTestLibrary.IsEmulator)
        {
            Assert.Equal(1, CudaDevice.Count);
            Assert.Equal("LlmKernels CUDA emulator (CPU)", CudaDevice.GetInfo(0).Name);
        }
    }

    [Fact]
    public void AnOverrideNamingAMissingFileSaysSo()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"llmk-no-such-cuda-{Guid.NewGuid():N}", "libllmkernels_cuda.so");
        CudaLibrary.LoadResult result = CudaLibrary.Load(missing);
        Assert.Equal(0, result.Handle);
        Assert.Null(result.Path);
        Assert.StartsWith($"LLMK_CUDA_LIBRARY names {missing}, which is not found", result.Reason);
        Assert.Contains($"{missing}: not found", result.Reason);
        Assert.Contains("unset it", result.Reason);
        // What CudaDevice would say with it.
        Assert.Equal(result.Reason, CudaDevice.Detect(result).Reason);
        Assert.Equal(0, CudaDevice.Detect(result).Count);
    }

    [Fact]
    public void AnOverrideNamingSomethingUnloadableSaysSoWithTheLoadersReason()
    {
        string garbage = Path.Combine(Path.GetTempPath(), $"llmk-not-a-cuda-library-{Guid.NewGuid():N}.so");
        File.WriteAllText(garbage, "not a shared library");
        try
        {
            CudaLibrary.LoadResult result = CudaLibrary.Load(garbage);
            Assert.Equal(0, result.Handle);
            Assert.StartsWith($"LLMK_CUDA_LIBRARY names {garbage}, which is not loadable", result.Reason);
            Assert.Contains($"{garbage}: ", result.Reason);
            Assert.DoesNotContain($"{garbage}: not found", result.Reason);
        }
        finally
        {
            File.Delete(garbage);
        }
    }

    [Fact]
    public void ABareFileNameIsLookedForWhereTheNativeLibrariesAre()
    {
        const string file = "libllmkernels_cuda_whatever.so";
        List<string> paths = CudaLibrary.CandidatePaths(file).ToList();
        Assert.Equal(NativeLibraryLoader.CandidatePathsOf(file), paths);
        Assert.Contains(Path.Combine(AppContext.BaseDirectory, file), paths);
        // A path is that file alone.
        Assert.Equal([Path.GetFullPath("some/dir/" + file)], CudaLibrary.CandidatePaths("some/dir/" + file));
        // None (null or empty) is llmkernels_cuda, where the CPU library is looked for.
        Assert.Equal(NativeLibraryLoader.CandidatePaths(LibraryNames.Cuda), CudaLibrary.CandidatePaths(null));
        Assert.Equal(NativeLibraryLoader.CandidatePaths(LibraryNames.Cuda), CudaLibrary.CandidatePaths(""));
    }

    [Fact]
    public void WithoutTheOverrideTheRealLibraryIsLookedFor()
    {
        CudaLibrary.LoadResult result = CudaLibrary.Load(null);
        string file = NativeLibraryLoader.FileName(LibraryNames.Cuda);
        List<string> paths = CudaLibrary.CandidatePaths(null).ToList();
        if (paths.Any(File.Exists))
        {
            // A host with a CUDA toolkit builds llmkernels_cuda beside the CPU library: it loads.
            Assert.True(result.Handle != 0 || result.Reason!.Contains("not loadable"), result.Reason);
            return;
        }
        Assert.Equal(0, result.Handle);
        Assert.StartsWith($"the CUDA library {file} is not built or not found (docs/cuda.md); tried ", result.Reason);
        foreach (string path in paths)
            Assert.Contains($"{path}: not found", result.Reason);
    }

    [CudaFact]
    public void TheEmulatorByItsBareNameLoads()
    {
        if (!CudaTestLibrary.EmulatorBuildsHere)
            return;
        CudaLibrary.LoadResult result = CudaLibrary.Load(CudaTestLibrary.EmulatorFile);
        Assert.True(result.Handle != 0, result.Reason);
        Assert.Null(result.Reason);
        Assert.Equal(CudaTestLibrary.EmulatorFile, Path.GetFileName(result.Path));
    }

    [Fact]
    public void CallsWhereCudaIsUnavailableSayWhy()
    {
        var probe = new CudaDevice.Probe(0, "no CUDA device (CUDA runtime 12.0)");
        var e = Assert.Throws<InvalidOperationException>(() => CudaDevice.ThrowUnavailable(probe));
        Assert.Equal("CUDA is not available: no CUDA device (CUDA runtime 12.0)", e.Message);
        if (CudaDevice.IsAvailable)
            return;
        // On a host without CUDA, every entry point says the same.
        string reason = CudaDevice.UnavailableReason!;
        Assert.Contains(reason, Assert.Throws<InvalidOperationException>(() => new DeviceBuffer<float>(4)).Message);
        Assert.Contains(reason, Assert.Throws<InvalidOperationException>(() => new CudaStream()).Message);
        Assert.Contains(reason, Assert.Throws<InvalidOperationException>(() => new CudaEvent()).Message);
        Assert.Contains(reason, Assert.Throws<InvalidOperationException>(() => CudaStream.Default.Synchronize()).Message);
        Assert.Contains(reason, Assert.Throws<InvalidOperationException>(() => CudaDevice.Synchronize(0)).Message);
        Assert.Contains(reason, Assert.Throws<InvalidOperationException>(() =>
            CudaKernels.RmsNorm(0, 0, 0, 0, 8, TensorDataType.Float32, TensorDataType.Float32)).Message);
    }
}

/// <summary>The emulator's no-device answer (LK_CUDA_EMU_DEVICES=0, read by the native library on each call), alone in the process:
/// every other CUDA test would see no device meanwhile.</summary>
[Collection(ProcessEnvironmentCollection.Name)]
public sealed class CudaNoDeviceTests
{
    [LinuxFact]
    public void NoDeviceIsAReasonNotAnError()
    {
        if (!CudaTestLibrary.IsEmulator)
            return; // only the emulator can be told it has no device
        using (NativeEnvironment.Set("LK_CUDA_EMU_DEVICES", "0"))
        {
            CudaDevice.Probe probe = CudaDevice.Detect(CudaLibrary.Loaded);
            Assert.Equal(0, probe.Count);
            Assert.StartsWith("no CUDA device (CUDA runtime ", probe.Reason);
        }
        Assert.Equal(1, CudaDevice.Detect(CudaLibrary.Loaded).Count);
    }
}
