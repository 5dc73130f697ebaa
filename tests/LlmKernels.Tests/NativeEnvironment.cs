using System.Runtime.InteropServices;

namespace LlmKernels.Tests;

/// <summary>
/// The C library's environment. On Linux, Environment.SetEnvironmentVariable changes only the
/// runtime's own copy, so native getenv (which reads LLMK_ISA) never sees it: set it through libc.
/// </summary>
internal static unsafe partial class NativeEnvironment
{
    /// <summary>Sets <paramref name="name"/> (null: unsets it) and returns a scope that restores the previous value.</summary>
    internal static IDisposable Set(string name, string? value)
    {
        if (!OperatingSystem.IsLinux())
            throw new PlatformNotSupportedException("The native environment is set through glibc here.");
        byte* previous = GetEnv(name);
        string? saved = previous is null ? null : new string((sbyte*)previous);
        Apply(name, value);
        return new Restore(name, saved);
    }

    private static void Apply(string name, string? value)
    {
        int rc = value is null ? UnsetEnv(name) : SetEnv(name, value, 1);
        if (rc != 0)
            throw new InvalidOperationException($"setenv/unsetenv({name}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    private sealed class Restore(string name, string? value) : IDisposable
    {
        public void Dispose() => Apply(name, value);
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int SetEnv(string name, string value, int overwrite);

    [LibraryImport("libc", EntryPoint = "unsetenv", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int UnsetEnv(string name);

    [LibraryImport("libc", EntryPoint = "getenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial byte* GetEnv(string name);
}
