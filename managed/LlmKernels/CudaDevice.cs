using System.Text;
using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>One CUDA device's properties (<see cref="CudaDevice.GetInfo"/>).</summary>
/// <param name="Ordinal">The device's index, 0 to <see cref="CudaDevice.Count"/> - 1.</param>
/// <param name="Name">The name the driver gives, such as "NVIDIA H200".</param>
/// <param name="ComputeCapabilityMajor">8 for A100, 9 for H100 and H200.</param>
/// <param name="ComputeCapabilityMinor">The minor version of the compute capability.</param>
/// <param name="MultiprocessorCount">Streaming multiprocessors.</param>
/// <param name="TotalMemoryBytes">Device memory.</param>
/// <param name="SharedMemoryPerBlockOptInBytes">The most shared memory one block may opt in to.</param>
/// <param name="L2CacheBytes">The L2 cache.</param>
/// <param name="MemoryBusWidthBits">The memory bus width.</param>
/// <param name="PciBusId">The PCI bus.</param>
/// <param name="PciDeviceId">The PCI device.</param>
public readonly record struct CudaDeviceInfo(
    int Ordinal, string Name, int ComputeCapabilityMajor, int ComputeCapabilityMinor, int MultiprocessorCount,
    long TotalMemoryBytes, long SharedMemoryPerBlockOptInBytes, int L2CacheBytes, int MemoryBusWidthBits, int PciBusId,
    int PciDeviceId);

/// <summary>
/// The CUDA devices the CUDA library (<c>llmkernels_cuda</c>, docs/cuda.md) sees. Where that library
/// is not built or not found, was built for another ABI, or finds no usable driver or no device,
/// <see cref="IsAvailable"/> is false and <see cref="UnavailableReason"/> says which; nothing throws
/// until a device is asked for. The answer is found once per process.
/// </summary>
public static unsafe class CudaDevice
{
    private sealed record Probe(int Count, string? Reason);

    private static readonly Lazy<Probe> Found = new(Detect);

    /// <summary>Whether the CUDA library is loaded and sees at least one device.</summary>
    public static bool IsAvailable => Found.Value.Count > 0;

    /// <summary>Why CUDA cannot be used here (library not built or not found, ABI mismatch, no driver, no device); null when it can.</summary>
    public static string? UnavailableReason => Found.Value.Reason;

    /// <summary>The number of CUDA devices; 0 when <see cref="IsAvailable"/> is false.</summary>
    public static int Count => Found.Value.Count;

    /// <summary>The properties of device <paramref name="device"/>.</summary>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="device"/> is not in [0, <see cref="Count"/>).</exception>
    public static CudaDeviceInfo GetInfo(int device)
    {
        if (!IsAvailable)
            throw new InvalidOperationException($"CUDA is not available: {UnavailableReason}");
        ArgumentOutOfRangeException.ThrowIfNegative(device);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(device, Count);
        CudaDeviceProperties p;
        NativeStatus.ThrowIfFailed(NativeMethods.CudaDevicePropertiesGet(device, &p), "lk_cuda_device_properties_get");
        var name = new ReadOnlySpan<byte>(p.Name, 256);
        int end = name.IndexOf((byte)0);
        return new CudaDeviceInfo(p.Ordinal, Encoding.UTF8.GetString(end >= 0 ? name[..end] : name), p.ComputeCapabilityMajor,
            p.ComputeCapabilityMinor, p.MultiprocessorCount, (long)p.TotalMemoryBytes, (long)p.SharedMemoryPerBlockOptinBytes,
            p.L2CacheBytes, p.MemoryBusWidthBits, p.PciBusId, p.PciDeviceId);
    }

    private static Probe Detect()
    {
        string file = NativeLibraryLoader.FileName(LibraryNames.Cuda);
        var paths = NativeLibraryLoader.CandidatePaths(LibraryNames.Cuda).ToList();
        if (!NativeLibraryLoader.TryLoad(paths, out _, out string failures))
        {
            string why = paths.All(path => !File.Exists(path)) ? "not built or not found" : "not loadable";
            return new(0, $"the CUDA library {file} is {why} (docs/cuda.md); tried {string.Join("; ", failures.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))}");
        }
        try
        {
            int abi = NativeMethods.CudaAbiVersion();
            if (abi != NativeConstants.CudaAbiVersion)
                return new(0, $"the CUDA library {file} has ABI {abi}, these bindings {NativeConstants.CudaAbiVersion}: rebuild it from the same sources");
            int count;
            Status status = NativeMethods.CudaDeviceCount(&count);
            if (status != Status.Ok)
                return new(0, $"lk_cuda_device_count: {NativeStatus.LastError()}");
            return count > 0 ? new(count, null) : new(0, NativeStatus.LastError());
        }
        catch (DllNotFoundException e)
        {
            return new(0, $"the CUDA library {file} could not be loaded (docs/cuda.md): {e.Message.Split('\n')[0]}");
        }
        catch (EntryPointNotFoundException e)
        {
            return new(0, $"{file} lacks an entry point these bindings need: {e.Message}");
        }
    }
}
