namespace LlmKernels.Tests;

/// <summary>CudaStream and CudaEvent: creation, synchronisation, the foreign-stream wrapper, the default stream, timing, and
/// their lifetime rules.</summary>
[Collection(CudaCollection.Name)]
public sealed class CudaStreamTests
{
    [CudaFact]
    public void AStreamIsCreatedSynchronisedAndDisposedOnce()
    {
        var stream = new CudaStream();
        Assert.NotEqual(0, stream.Handle);
        Assert.Equal(0, stream.Device);
        Assert.True(stream.OwnsHandle);
        stream.Synchronize();
        stream.Dispose();
        stream.Dispose();
        Assert.Throws<ObjectDisposedException>(() => stream.Handle);
        Assert.Throws<ObjectDisposedException>(() => stream.Synchronize());
        using var buffer = new DeviceBuffer<float>(4);
        using var y = new DeviceBuffer<float>(4);
        Assert.Throws<ObjectDisposedException>(() => buffer.CopyFrom(new float[4], stream));
        Assert.Throws<ObjectDisposedException>(() => Kernels.RmsNorm<float>(buffer, buffer, y, stream: stream));
    }

    [CudaFact]
    public void ABadDeviceIsNamed()
    {
        Assert.Equal("device", Assert.Throws<ArgumentOutOfRangeException>(() => new CudaStream(CudaDevice.Count)).ParamName);
        Assert.Equal("device", Assert.Throws<ArgumentOutOfRangeException>(() => new CudaEvent(-1)).ParamName);
        Assert.Equal("device", Assert.Throws<ArgumentOutOfRangeException>(() => CudaStream.FromHandle(0, CudaDevice.Count)).ParamName);
        Assert.Equal("device", Assert.Throws<ArgumentOutOfRangeException>(() => CudaDevice.Synchronize(CudaDevice.Count)).ParamName);
    }

    [CudaFact]
    public void AWrappedStreamIsUsedButNotDestroyed()
    {
        using var owner = new CudaStream();
        var wrapper = CudaStream.FromHandle(owner.Handle, device: 0);
        Assert.False(wrapper.OwnsHandle);
        Assert.Equal(owner.Handle, wrapper.Handle);
        using var buffer = new DeviceBuffer<int>(16);
        buffer.CopyFrom(Enumerable.Range(0, 16).ToArray(), wrapper);
        wrapper.Synchronize();
        wrapper.Dispose();
        Assert.Throws<ObjectDisposedException>(() => wrapper.Handle);
        // The stream itself is untouched: its owner still uses it.
        buffer.Clear(owner);
        owner.Synchronize();
        Assert.All(buffer.ToArray(), v => Assert.Equal(0, v));
        Assert.Null(CudaStream.FromHandle(owner.Handle).Device);
    }

    [CudaFact]
    public void TheDefaultStreamIsSharedAndNeverDisposed()
    {
        Assert.Equal(0, CudaStream.Default.Handle);
        Assert.Null(CudaStream.Default.Device);
        CudaStream.Default.Synchronize();
        CudaStream.Default.Dispose();
        Assert.Equal(0, CudaStream.Default.Handle);
        using var buffer = new DeviceBuffer<float>(8);
        buffer.Clear(CudaStream.Default);
        CudaStream.Default.Synchronize();
        Assert.All(buffer.ToArray(), v => Assert.Equal(0f, v));
        // A wrapped 0 is the same stream.
        CudaStream.FromHandle(0).Synchronize();
    }

    [CudaFact]
    public void DeviceSynchronizationAndTheKernelErrorCheckReportNothingWhenNothingWentWrong()
    {
        CudaDevice.Synchronize(0);
        CudaDevice.CheckKernelErrors();
    }

    [CudaFact]
    public void EventsTimeWorkOnAStream()
    {
        using var stream = new CudaStream();
        using var start = new CudaEvent();
        using var end = new CudaEvent();
        Assert.NotEqual(0, start.Handle);
        Assert.Equal(0, start.Device);
        using var x = new DeviceBuffer<float>(Enumerable.Range(0, 4096 * 4).Select(i => i * 0.001f).ToArray());
        using var weight = new DeviceBuffer<float>(Enumerable.Repeat(1f, 4096).ToArray());
        start.Record(stream);
        Kernels.RmsNorm<float>(x, weight, x, stream: stream);
        end.Record(stream);
        stream.Synchronize();
        float ms = CudaEvent.ElapsedMilliseconds(start, end);
        Assert.True(ms >= 0 && float.IsFinite(ms), $"{ms} ms");
        // On the default stream too.
        start.Record();
        end.Record();
        CudaStream.Default.Synchronize();
        Assert.True(CudaEvent.ElapsedMilliseconds(start, end) >= 0);
    }

    [CudaFact]
    public void AnEventNeverRecordedIsACudaErrorWithItsName()
    {
        using var start = new CudaEvent();
        using var end = new CudaEvent();
        var e = Assert.Throws<CudaException>(() => CudaEvent.ElapsedMilliseconds(start, end));
        Assert.Equal("cudaErrorInvalidResourceHandle", e.ErrorName);
        Assert.StartsWith("lk_cuda_event_elapsed_ms: cudaEventElapsedTime: cudaErrorInvalidResourceHandle: ", e.Message);
        Assert.EndsWith("(LK_ERR_DEVICE)", e.Message);
    }

    [CudaFact]
    public void EventLifetimeAndDevices()
    {
        var ev = new CudaEvent();
        ev.Dispose();
        ev.Dispose();
        Assert.Throws<ObjectDisposedException>(() => ev.Handle);
        Assert.Throws<ObjectDisposedException>(() => ev.Record());
        using var other = new CudaEvent();
        other.Record();
        Assert.Throws<ObjectDisposedException>(() => CudaEvent.ElapsedMilliseconds(ev, other));
        Assert.Throws<ArgumentNullException>(() => CudaEvent.ElapsedMilliseconds(null!, other));
        // A stream said to be on another device than the event (only the wrapper can claim that on a one-device host).
        if (CudaDevice.Count > 1)
        {
            using var stream = new CudaStream(1);
            Assert.Equal("stream", Assert.Throws<ArgumentException>(() => other.Record(stream)).ParamName);
        }
    }
}
