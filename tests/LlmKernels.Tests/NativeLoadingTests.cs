using System.Runtime.InteropServices;
using LlmKernels.Interop;

namespace LlmKernels.Tests;

/// <summary>
/// A native library that cannot be loaded is reported path by path with the reason for each, and
/// the search covers the places the architecture promises: beside the assembly, and
/// runtimes/&lt;rid&gt;/native under it.
/// </summary>
public sealed class NativeLoadingTests
{
    private static string LibraryFile => NativeLibraryLoader.FileName(LibraryNames.Cpu);

    [Fact]
    public void FailureNamesEachPathAndWhy()
    {
        string missing = Path.Combine(Path.DirectorySeparatorChar + "nonexistent", LibraryFile);
        string garbage = Path.Combine(Path.GetTempPath(), $"llmk-not-a-library-{Guid.NewGuid():N}{Path.GetExtension(LibraryFile)}");
        File.WriteAllText(garbage, "this is not a shared library");
        try
        {
            Assert.False(NativeLibraryLoader.TryLoad([missing, garbage], out nint handle, out string failures));
            Assert.Equal(0, handle);
            // One entry per path, in order: "  <path>: <reason>"; the loader's reason may span lines.
            Assert.StartsWith($"  {missing}: not found{Environment.NewLine}", failures);
            string entry = $"{Environment.NewLine}  {garbage}: ";
            int at = failures.IndexOf(entry, StringComparison.Ordinal);
            Assert.True(at > 0, $"no entry for {garbage} in:{Environment.NewLine}{failures}");
            string reason = failures[(at + entry.Length)..].Trim();
            Assert.False(string.IsNullOrWhiteSpace(reason), $"no reason given for {garbage}");
            Assert.False(reason.StartsWith("not found", StringComparison.Ordinal), "an existing file is reported as not found");
        }
        finally
        {
            File.Delete(garbage);
        }
    }

    [Fact]
    public void TheFirstLoadablePathWins()
    {
        string beside = Path.Combine(AppContext.BaseDirectory, LibraryFile);
        Assert.True(File.Exists(beside), $"the build copies {LibraryFile} beside the tests: {beside}");
        string missing = Path.Combine(Path.DirectorySeparatorChar + "nonexistent", LibraryFile);
        Assert.True(NativeLibraryLoader.TryLoad([missing, beside], out nint handle, out string failures));
        try
        {
            Assert.NotEqual(0, handle);
            Assert.Equal("", failures);
            Assert.True(NativeLibrary.TryGetExport(handle, "lk_abi_version", out _));
        }
        finally
        {
            NativeLibrary.Free(handle);
        }
    }

    [Fact]
    public void CandidatesIncludeTheAppDirectoryAndItsRuntimesFolder()
    {
        string rid = (OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux") + "-" +
                     RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
        var candidates = NativeLibraryLoader.CandidatePaths(LibraryNames.Cpu).ToList();
        Assert.Contains(Path.Combine(AppContext.BaseDirectory, LibraryFile), candidates);
        Assert.Contains(Path.Combine(AppContext.BaseDirectory, "runtimes", rid, "native", LibraryFile), candidates);
        Assert.All(candidates, path => Assert.EndsWith(LibraryFile, path));
    }

    [Fact]
    public void FileNameFollowsThePlatform()
    {
        string expected = OperatingSystem.IsWindows() ? "llmkernels.dll" : OperatingSystem.IsMacOS() ? "libllmkernels.dylib" : "libllmkernels.so";
        Assert.Equal(expected, LibraryFile);
    }
}
