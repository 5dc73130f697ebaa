using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace LlmKernels.Interop;

/// <summary>
/// Finds the native libraries: next to the assembly, under <c>runtimes/&lt;rid&gt;/native/</c>, or in
/// the repository's CMake output; <c>LLMK_NATIVE_DIR</c> overrides. A failure names every path tried
/// and the loader's reason for each, since "DllNotFoundException: llmkernels" alone sends users hunting.
/// </summary>
internal static class NativeLibraryLoader
{
    internal const string DirectoryVariable = "LLMK_NATIVE_DIR";

#pragma warning disable CA2255 // A library may register its own resolver in a module initializer.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Register() => NativeLibrary.SetDllImportResolver(typeof(NativeLibraryLoader).Assembly, Resolve);

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        // The CUDA library is optional and found once, by CudaLibrary (which honours LLMK_CUDA_LIBRARY), so every
        // lk_cuda_* import binds to the file CudaDevice reported; 0 makes the runtime throw DllNotFoundException.
        if (libraryName == LibraryNames.Cuda)
            return CudaLibrary.Loaded.Handle;
        if (libraryName != LibraryNames.Cpu)
            return 0;
        if (TryLoad(CandidatePaths(libraryName), out nint handle, out string failures))
            return handle;
        throw new DllNotFoundException(
            $"LlmKernels could not load its native library '{FileName(libraryName)}'. Tried:{Environment.NewLine}{failures}" +
            $"Build it with './build.sh --target=Native', or set {DirectoryVariable} to the folder that holds it.");
    }

    /// <summary>Tries each path in order; on failure, <paramref name="failures"/> lists each path with its reason.</summary>
    internal static bool TryLoad(IEnumerable<string> paths, out nint handle, out string failures) =>
        TryLoad(paths, out handle, out _, out failures);

    /// <summary>As <see cref="TryLoad(IEnumerable{string}, out nint, out string)"/>, with the path that loaded.</summary>
    internal static bool TryLoad(IEnumerable<string> paths, out nint handle, out string? loaded, out string failures)
    {
        var report = new System.Text.StringBuilder();
        foreach (string path in paths)
        {
            if (!File.Exists(path))
            {
                report.Append("  ").Append(path).AppendLine(": not found");
                continue;
            }
            try
            {
                handle = NativeLibrary.Load(path);
                loaded = path;
                failures = "";
                return true;
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException)
            {
                report.Append("  ").Append(path).Append(": ").AppendLine(e.Message);
            }
        }
        handle = 0;
        loaded = null;
        failures = report.ToString();
        return false;
    }

    internal static string FileName(string libraryName) =>
        OperatingSystem.IsWindows() ? libraryName + ".dll"
        : OperatingSystem.IsMacOS() ? "lib" + libraryName + ".dylib"
        : "lib" + libraryName + ".so";

    internal static string RuntimeIdentifier
    {
        get
        {
            string os = OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux";
            string arch = RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant();
            return os + "-" + arch;
        }
    }

    internal static IEnumerable<string> CandidatePaths(string libraryName) => CandidatePathsOf(FileName(libraryName));

    /// <summary>Where a library file named <paramref name="file"/> is looked for, in order.</summary>
    internal static IEnumerable<string> CandidatePathsOf(string file)
    {
        if (Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } overrideDir)
            yield return Path.Combine(overrideDir, file);
        // AppContext.BaseDirectory works for single-file and NativeAOT apps, where Assembly.Location is empty.
        var roots = new List<string> { AppContext.BaseDirectory };
#pragma warning disable IL3000 // Empty in single-file apps; then only AppContext.BaseDirectory is searched.
        string assemblyDir = Path.GetDirectoryName(typeof(NativeLibraryLoader).Assembly.Location) ?? "";
#pragma warning restore IL3000
        if (assemblyDir.Length > 0 && !SamePath(assemblyDir, AppContext.BaseDirectory))
            roots.Add(assemblyDir);
        foreach (string root in roots)
        {
            yield return Path.Combine(root, file);
            yield return Path.Combine(root, "runtimes", RuntimeIdentifier, "native", file);
        }
        // A development checkout: the CMake output of build.cake's Native target, above bin/.
        for (DirectoryInfo? dir = new(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "build.cake")))
            {
                yield return Path.Combine(dir.FullName, "build", "native", "lib", file);
                break;
            }
        }
    }

    private static bool SamePath(string a, string b) =>
        string.Equals(Path.TrimEndingDirectorySeparator(a), Path.TrimEndingDirectorySeparator(b), StringComparison.Ordinal);
}
