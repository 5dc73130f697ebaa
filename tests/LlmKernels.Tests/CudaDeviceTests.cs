namespace LlmKernels.Tests;

/// <summary>
/// CudaDevice on whatever host runs the tests: with the CUDA library and a GPU, the devices and
/// their properties; without (no library, no driver, no device), a reason, a count of 0, and
/// device calls that say why instead of failing obscurely.
/// </summary>
public class CudaDeviceTests
{
    [Fact]
    public void AvailabilityComesWithAReasonWhenFalse()
    {
        if (CudaDevice.IsAvailable)
        {
            Assert.Null(CudaDevice.UnavailableReason);
            Assert.True(CudaDevice.Count > 0);
        }
        else
        {
            Assert.False(string.IsNullOrWhiteSpace(CudaDevice.UnavailableReason));
            Assert.Equal(0, CudaDevice.Count);
        }
    }

    [Fact]
    public void TheAnswerIsStable()
    {
        Assert.Equal(CudaDevice.IsAvailable, CudaDevice.IsAvailable);
        Assert.Equal(CudaDevice.UnavailableReason, CudaDevice.UnavailableReason);
    }

    [Fact]
    public void DeviceInfoOrWhyNot()
    {
        if (!CudaDevice.IsAvailable)
        {
            var e = Assert.Throws<InvalidOperationException>(() => CudaDevice.GetInfo(0));
            Assert.Contains(CudaDevice.UnavailableReason!, e.Message);
            return;
        }
        for (int d = 0; d < CudaDevice.Count; d++)
        {
            CudaDeviceInfo info = CudaDevice.GetInfo(d);
            Assert.Equal(d, info.Ordinal);
            Assert.False(string.IsNullOrWhiteSpace(info.Name));
            Assert.True(info.ComputeCapabilityMajor >= 5);
            Assert.True(info.MultiprocessorCount > 0);
            Assert.True(info.TotalMemoryBytes > 1L << 30);
        }
    }

    [Fact]
    public void ADeviceIndexOutOfRangeIsNamed()
    {
        if (!CudaDevice.IsAvailable)
        {
            Assert.Throws<InvalidOperationException>(() => CudaDevice.GetInfo(-1));
            return;
        }
        Assert.Equal("device", Assert.Throws<ArgumentOutOfRangeException>(() => CudaDevice.GetInfo(-1)).ParamName);
        Assert.Equal("device", Assert.Throws<ArgumentOutOfRangeException>(() => CudaDevice.GetInfo(CudaDevice.Count)).ParamName);
    }

    [Fact]
    public void SetCurrentTakesEveryDeviceAndNamesABadOne()
    {
        if (!CudaDevice.IsAvailable)
        {
            Assert.Throws<InvalidOperationException>(() => CudaDevice.SetCurrent(0));
            return;
        }
        for (int d = 0; d < CudaDevice.Count; d++)
            CudaDevice.SetCurrent(d);
        Assert.Equal("device", Assert.Throws<ArgumentOutOfRangeException>(() => CudaDevice.SetCurrent(-1)).ParamName);
        Assert.Equal("device", Assert.Throws<ArgumentOutOfRangeException>(() => CudaDevice.SetCurrent(CudaDevice.Count)).ParamName);
    }
}
