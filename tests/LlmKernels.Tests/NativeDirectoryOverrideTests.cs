using LlmKernels.Interop;

namespace LlmKernels.Tests;

/// <summary>LLMK_NATIVE_DIR, read by the managed loader, is searched first.</summary>
[Collection(ProcessEnvironmentCollection.Name)]
public sealed class NativeDirectoryOverrideTests
{
    [Fact]
    public void OverrideDirectoryComesFirst()
    {
        string? previous = Environment.GetEnvironmentVariable(NativeLibraryLoader.DirectoryVariable);
        string directory = Path.Combine(Path.GetTempPath(), "llmk-native-override");
        try
        {
            Environment.SetEnvironmentVariable(NativeLibraryLoader.DirectoryVariable, directory);
            string first = NativeLibraryLoader.CandidatePaths(LibraryNames.Cpu).First();
            Assert.Equal(Path.Combine(directory, NativeLibraryLoader.FileName(LibraryNames.Cpu)), first);
        }
        finally
        {
            Environment.SetEnvironmentVariable(NativeLibraryLoader.DirectoryVariable, previous);
        }
    }
}
