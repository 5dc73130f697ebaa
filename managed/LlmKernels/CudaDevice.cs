using System.Diagnostics.CodeAnalysis;
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
/// until a device is asked for, and then every CUDA call (a device, stream, event or buffer, a kernel)
/// throws <see cref="InvalidOperationException"/> with that reason. The answer is found once per process.
/// </summary>
/// <remarks>
/// <c>LLMK_CUDA_LIBRARY</c>, read once before the first CUDA call, names a library file to load instead of
/// <c>llmkernels_cuda</c>: a path, or a file name looked for where the native libraries are. It is a diagnostic and test
/// override (the tests point it at <c>llmkernels_cuda_emu</c>, the CUDA sources over a CPU emulator); docs/cuda/managed.md.
/// </remarks>
public static unsafe class CudaDevice
{
    internal sealed record Probe(int Count, string? Reason);

    private static readonly Lazy<Probe> Found = new(() => Detect(CudaLibrary.Loaded));

    /// <summary>Whether the CUDA library is loaded and sees at least one device.</summary>
    public static bool IsAvailable => Found.Value.Count > 0;

    /// <summary>Why CUDA cannot be used here (library not built or not found, ABI mismatch, no driver, no device); null when it can.</summary>
    public static string? UnavailableReason => Found.Value.Reason;

    /// <summary>The number of CUDA devices; 0 when <see cref="IsAvailable"/> is false.</summary>
    public static int Count => Found.Value.Count;

    /// <summary>The CUDA library file loaded (<c>llmkernels_cuda</c>, or what <c>LLMK_CUDA_LIBRARY</c> names); null when none loaded.</summary>
    public static string? LibraryPath
    {
        get
        {
            _ = Found.Value;
            return CudaLibrary.Loaded.Path;
        }
    }

    /// <summary>The properties of device <paramref name="device"/>.</summary>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="device"/> is not in [0, <see cref="Count"/>).</exception>
    public static CudaDeviceInfo GetInfo(int device)
    {
        ThrowIfUnavailable();
        CheckDevice(device);
        CudaDeviceProperties p;
        NativeStatus.ThrowIfFailed(NativeMethods.CudaDevicePropertiesGet(device, &p), "lk_cuda_device_properties_get");
        var name = new ReadOnlySpan<byte>(p.Name, 256);
        int end = name.IndexOf((byte)0);
        return new CudaDeviceInfo(p.Ordinal, Encoding.UTF8.GetString(end >= 0 ? name[..end] : name), p.ComputeCapabilityMajor,
            p.ComputeCapabilityMinor, p.MultiprocessorCount, (long)p.TotalMemoryBytes, (long)p.SharedMemoryPerBlockOptinBytes,
            p.L2CacheBytes, p.MemoryBusWidthBits, p.PciBusId, p.PciDeviceId);
    }

    /// <summary>
    /// Waits for all work queued on device <paramref name="device"/> (every stream), then reports the first bad index a kernel
    /// found in device memory since the last report (see <see cref="CheckKernelErrors"/>). Makes it the calling thread's current
    /// device, as the CUDA runtime's <c>cudaDeviceSynchronize</c> after <c>cudaSetDevice</c> does.
    /// </summary>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="device"/> is not in [0, <see cref="Count"/>).</exception>
    /// <exception cref="ArgumentException">A kernel found a bad index (a slot, block id, position, offset or expert id) in device
    /// memory: <see cref="ArgumentException.ParamName"/> is the kernel's C# parameter, the message names the element.</exception>
    /// <exception cref="CudaException">The CUDA runtime reported an error (a kernel fault is reported here, for one).</exception>
    public static void Synchronize(int device)
    {
        ThrowIfUnavailable();
        CheckDevice(device);
        NativeStatus.ThrowIfFailed(NativeMethods.CudaDeviceSynchronize(device), "lk_cuda_device_synchronize");
    }

    /// <summary>
    /// Makes <paramref name="device"/> the calling thread's current device (<c>cudaSetDevice</c>): the one the raw-pointer kernels
    /// of <see cref="CudaKernels"/> run on, and whose legacy default stream a stream handle of 0 names. The methods over device
    /// buffers make their buffers' device current themselves.
    /// </summary>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="device"/> is not in [0, <see cref="Count"/>).</exception>
    public static void SetCurrent(int device)
    {
        ThrowIfUnavailable();
        CheckDevice(device);
        MakeCurrent(device);
    }

    /// <summary>cudaSetDevice for a device already checked (a buffer's or a stream's).</summary>
    internal static void MakeCurrent(int device) =>
        NativeStatus.ThrowIfFailed(NativeMethods.CudaSetDevice(device), "lk_cuda_set_device");

    /// <summary>
    /// Reports the first bad index a kernel of the library recorded since the last report, on any device, and clears it. Kernels
    /// check the indices they read from device memory (slot mappings, block tables, sequence lengths and offsets, positions, expert
    /// ids, routing rows), skip the work a bad one would direct and record it; this does not wait for them, so call it after a
    /// synchronisation (<see cref="CudaStream.Synchronize"/> and <see cref="Synchronize"/> report it themselves).
    /// </summary>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="ArgumentException">A kernel found a bad index; <see cref="ArgumentException.ParamName"/> is its C# parameter.</exception>
    public static void CheckKernelErrors()
    {
        ThrowIfUnavailable();
        NativeStatus.ThrowIfFailed(NativeMethods.CudaKernelErrorCheck(), "lk_cuda_kernel_error_check");
    }

    /// <summary>Throws <see cref="InvalidOperationException"/> with <see cref="UnavailableReason"/> unless CUDA is available: the first
    /// thing every CUDA call does, so none fails obscurely (a DllNotFoundException, a null handle) where CUDA cannot be used.</summary>
    internal static void ThrowIfUnavailable()
    {
        Probe probe = Found.Value;
        if (probe.Count == 0)
            ThrowUnavailable(probe);
    }

    [DoesNotReturn]
    internal static void ThrowUnavailable(Probe probe) => throw new InvalidOperationException($"CUDA is not available: {probe.Reason}");

    internal static void CheckDevice(int device, string name = "device")
    {
        ArgumentOutOfRangeException.ThrowIfNegative(device, name);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(device, Count, name);
    }

    /// <summary>What the library <paramref name="loaded"/> (this process's, when it loaded one) says about the devices.</summary>
    internal static Probe Detect(CudaLibrary.LoadResult loaded)
    {
        if (loaded.Handle == 0)
            return new(0, loaded.Reason);
        string file = Path.GetFileName(loaded.Path!);
        try
        {
            int abi = NativeMethods.CudaAbiVersion();
            if (abi != NativeConstants.CudaAbiVersion)
                return new(0, $"the CUDA library {loaded.Path} has ABI {abi}, these bindings {NativeConstants.CudaAbiVersion}: rebuild it from the same sources");
            int count;
            Status status = NativeMethods.CudaDeviceCount(&count);
            if (status != Status.Ok)
                return new(0, $"lk_cuda_device_count: {NativeStatus.LastError()}");
            return count > 0 ? new(count, null) : new(0, NativeStatus.LastError());
        }
        catch (EntryPointNotFoundException e)
        {
            return new(0, $"{file} lacks an entry point these bindings need: {e.Message}");
        }
    }
}
