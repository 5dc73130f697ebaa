using System.Runtime.InteropServices;

namespace LlmKernels.Peers;

/// <summary>
/// A 64-byte aligned block of native memory: what every peer and ceiling probe reads and writes,
/// so that no measurement depends on where the GC put an array or pays for pinning it.
/// </summary>
public sealed unsafe class NativeBuffer : IDisposable
{
    /// <summary>Cache-line alignment: the AVX2 kernels and the streaming-store probe use aligned accesses.</summary>
    public const int Alignment = 64;

    private byte* _pointer;

    public NativeBuffer(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        // Round up so that a vector loop over the whole buffer never needs a tail.
        long rounded = Math.Max(Alignment, (bytes + Alignment - 1) / Alignment * Alignment);
        _pointer = (byte*)NativeMemory.AlignedAlloc((nuint)rounded, Alignment);
        Bytes = bytes;
    }

    /// <summary>The size asked for (the allocation is rounded up to a multiple of 64 bytes).</summary>
    public long Bytes { get; }

    public byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_pointer == null, this);
            return _pointer;
        }
    }

    public T* As<T>() where T : unmanaged => (T*)Pointer;

    public Span<T> AsSpan<T>() where T : unmanaged => new(Pointer, checked((int)(Bytes / sizeof(T))));

    /// <summary>Writes every page so that page faults happen here and not inside a timed region.</summary>
    public void Touch() => NativeMemory.Clear(Pointer, (nuint)Bytes);

    public void Dispose()
    {
        if (_pointer != null)
        {
            NativeMemory.AlignedFree(_pointer);
            _pointer = null;
        }
    }
}
