using System.Runtime.InteropServices;

namespace LlmKernels.Peers;

/// <summary>What the benchmark output records about the machine it ran on.</summary>
public static class MachineInfo
{
    /// <summary>The CPU's model name (Linux /proc/cpuinfo), or null where that is not available.</summary>
    public static string? CpuName()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
                foreach (var line in File.ReadLines("/proc/cpuinfo"))
                    if (line.StartsWith("model name", StringComparison.Ordinal))
                        return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>The largest cache of CPU 0 in bytes (Linux sysfs), or null where unknown.</summary>
    public static long? LastLevelCacheBytes()
    {
        const string root = "/sys/devices/system/cpu/cpu0/cache";
        if (!Directory.Exists(root))
            return null;
        long? largest = null;
        try
        {
            foreach (var dir in Directory.EnumerateDirectories(root, "index*"))
            {
                var sizeFile = Path.Combine(dir, "size");
                if (!File.Exists(sizeFile))
                    continue;
                var text = File.ReadAllText(sizeFile).Trim(); // "300M", "2048K"
                long multiplier = text.EndsWith('K') ? 1L << 10 : text.EndsWith('M') ? 1L << 20 : text.EndsWith('G') ? 1L << 30 : 1;
                if (long.TryParse(text.TrimEnd('K', 'M', 'G'), out long value))
                    largest = Math.Max(largest ?? 0, value * multiplier);
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return largest;
    }

    /// <summary>
    /// The 1-minute load average (Linux), or null. Timings on a machine whose load is above its
    /// core count are other people's work as much as ours: the output says so next to the numbers.
    /// </summary>
    public static double? LoadAverage()
    {
        try
        {
            if (File.Exists("/proc/loadavg")
                && double.TryParse(File.ReadAllText("/proc/loadavg").Split(' ')[0], System.Globalization.NumberStyles.Float,
                                   System.Globalization.CultureInfo.InvariantCulture, out double load))
                return load;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    public static string Os => RuntimeInformation.OSDescription;
}
