using System.Runtime.InteropServices;
using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>
/// One device allocation (<c>lk_cuda_malloc</c>), freed once (<c>lk_cuda_free</c>) when its <see cref="DeviceBuffer{T}"/> is disposed
/// or, failing that, finalized, and never while a kernel call or copy holds a reference on it (<see cref="DeviceCall"/>). Views
/// (<see cref="DeviceSpan{T}"/>) hold it too, so memory a view can reach is never freed by the garbage collector under it.
/// </summary>
/// <remarks>
/// The parent a child keeps alive elsewhere (a CPU context for its calls) has no counterpart here: the CUDA runtime's primary
/// context of a device lives as long as the process (the library never resets a device), so an allocation needs its device's
/// ordinal, not an object. <c>cudaFree</c> waits for work queued before it that may use the memory.
/// </remarks>
internal sealed unsafe class DeviceMemory : SafeHandle
{
    private DeviceMemory(int device, long bytes) : base(0, ownsHandle: true)
    {
        Device = device;
        Bytes = bytes;
    }

    /// <summary>The device the memory is on.</summary>
    internal int Device { get; }

    /// <summary>Its size; 0 for an empty buffer, which allocates nothing.</summary>
    internal long Bytes { get; }

    public override bool IsInvalid => handle == 0;

    /// <summary><paramref name="bytes"/> of memory on <paramref name="device"/> (nothing for 0).</summary>
    internal static DeviceMemory Allocate(int device, long bytes)
    {
        var memory = new DeviceMemory(device, bytes);
        if (bytes > 0)
        {
            void* pointer;
            NativeStatus.ThrowIfFailed(NativeMethods.CudaMalloc(device, (nuint)bytes, &pointer), "lk_cuda_malloc");
            memory.SetHandle((nint)pointer);
        }
        return memory;
    }

    protected override bool ReleaseHandle() => NativeMethods.CudaFree((void*)handle) == Status.Ok;
}
