using System.Runtime.InteropServices;
using LlmKernels.Interop;

namespace LlmKernels;

/// <summary>
/// A CUDA event (a <c>cudaEvent_t</c>) for timing work on a stream: <see cref="Record"/> one before and one after, synchronise the
/// stream, then <see cref="ElapsedMilliseconds"/>. Owned: disposing destroys it; disposing twice is safe, and using it after throws
/// <see cref="ObjectDisposedException"/>.
/// </summary>
public sealed class CudaEvent : IDisposable
{
    private readonly EventHandle _handle;

    /// <summary>Creates an event on <paramref name="device"/>, which becomes the calling thread's current device.</summary>
    /// <exception cref="InvalidOperationException">CUDA is not available here; the message says why.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="device"/> is not a device.</exception>
    public unsafe CudaEvent(int device = 0)
    {
        CudaDevice.ThrowIfUnavailable();
        CudaDevice.CheckDevice(device);
        _handle = new EventHandle();
        nint handle;
        NativeStatus.ThrowIfFailed(NativeMethods.CudaEventCreate(device, &handle), "lk_cuda_event_create");
        _handle.Set(handle);
        Device = device;
    }

    /// <summary>The device the event is on.</summary>
    public int Device { get; }

    /// <summary>The <c>cudaEvent_t</c>, to hand to another library while the event is alive.</summary>
    /// <exception cref="ObjectDisposedException">The event is disposed.</exception>
    public nint Handle
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
            return _handle.DangerousGetHandle();
        }
    }

    /// <summary>Records the event on <paramref name="stream"/> (CUDA's legacy default stream when null): it completes when the work
    /// queued there before it is done.</summary>
    /// <exception cref="ArgumentException"><paramref name="stream"/> is on another device than the event.</exception>
    /// <exception cref="ObjectDisposedException">The event or the stream is disposed.</exception>
    /// <exception cref="CudaException">CUDA failed.</exception>
    public void Record(CudaStream? stream = null)
    {
        if (stream?.Device is int device && device != Device)
            throw new ArgumentException($"The stream is on device {device}, the event on device {Device}.", nameof(stream));
        using var call = new DeviceCall(stream, sameDevice: false);
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added);
            NativeStatus.ThrowIfFailed(NativeMethods.CudaEventRecord(_handle.DangerousGetHandle(), call.Stream), "lk_cuda_event_record");
        }
        finally
        {
            if (added)
                _handle.DangerousRelease();
        }
    }

    /// <summary>
    /// Milliseconds between <paramref name="start"/> and <paramref name="end"/> (<c>cudaEventElapsedTime</c>, about half a
    /// microsecond of resolution), both recorded and complete: synchronise the stream first.
    /// </summary>
    /// <exception cref="ArgumentNullException">An event is null.</exception>
    /// <exception cref="ObjectDisposedException">An event is disposed.</exception>
    /// <exception cref="CudaException">An event was never recorded (<c>cudaErrorInvalidResourceHandle</c>) or has not completed
    /// (<c>cudaErrorNotReady</c>).</exception>
    public static unsafe float ElapsedMilliseconds(CudaEvent start, CudaEvent end)
    {
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(end);
        CudaDevice.ThrowIfUnavailable();
        bool startAdded = false, endAdded = false;
        try
        {
            ObjectDisposedException.ThrowIf(start._handle.IsClosed, start);
            ObjectDisposedException.ThrowIf(end._handle.IsClosed, end);
            start._handle.DangerousAddRef(ref startAdded);
            end._handle.DangerousAddRef(ref endAdded);
            float milliseconds;
            NativeStatus.ThrowIfFailed(NativeMethods.CudaEventElapsedMs(start._handle.DangerousGetHandle(), end._handle.DangerousGetHandle(),
                                                                        &milliseconds), "lk_cuda_event_elapsed_ms");
            return milliseconds;
        }
        finally
        {
            if (startAdded)
                start._handle.DangerousRelease();
            if (endAdded)
                end._handle.DangerousRelease();
        }
    }

    /// <summary>Destroys the event; safe to call twice.</summary>
    public void Dispose() => _handle.Dispose();

    private sealed class EventHandle() : SafeHandle(0, ownsHandle: true)
    {
        public override bool IsInvalid => handle == 0;

        internal void Set(nint value) => SetHandle(value);

        protected override bool ReleaseHandle() => NativeMethods.CudaEventDestroy(handle) == Status.Ok;
    }
}
