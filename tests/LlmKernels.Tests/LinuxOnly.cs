namespace LlmKernels.Tests;

/// <summary>A fact that needs glibc's environment (see <see cref="NativeEnvironment"/>): skipped elsewhere, with the reason.</summary>
public sealed class LinuxFactAttribute : FactAttribute
{
    public LinuxFactAttribute()
    {
        if (!OperatingSystem.IsLinux())
            Skip = "Sets the native environment through glibc's setenv; other OSes are not wired up.";
    }
}

/// <summary>The theory form of <see cref="LinuxFactAttribute"/>.</summary>
public sealed class LinuxTheoryAttribute : TheoryAttribute
{
    public LinuxTheoryAttribute()
    {
        if (!OperatingSystem.IsLinux())
            Skip = "Sets the native environment through glibc's setenv; other OSes are not wired up.";
    }
}
