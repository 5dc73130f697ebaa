namespace LlmKernels.Interop;

/// <summary>
/// Finds and loads the CUDA library once per process: <c>llmkernels_cuda</c> where <see cref="NativeLibraryLoader"/> looks for
/// native libraries, or the file <c>LLMK_CUDA_LIBRARY</c> names instead (a diagnostic and test override: the tests point it at
/// <c>llmkernels_cuda_emu</c>, the same sources over a CPU emulator). Every <c>lk_cuda_*</c> import binds to the handle loaded
/// here, so what <see cref="CudaDevice"/> reports is what the kernels call.
/// </summary>
internal static class CudaLibrary
{
    internal const string OverrideVariable = "LLMK_CUDA_LIBRARY";

    /// <summary>A loaded library (<see cref="Handle"/> and <see cref="Path"/>), or why none was (<see cref="Reason"/>).</summary>
    internal readonly record struct LoadResult(nint Handle, string? Path, string? Reason);

    private static readonly Lazy<LoadResult> s_loaded = new(() => Load(Environment.GetEnvironmentVariable(OverrideVariable)));

    /// <summary>This process's CUDA library, loaded on first use.</summary>
    internal static LoadResult Loaded => s_loaded.Value;

    /// <summary>
    /// Loads the CUDA library <paramref name="overrideValue"/> names (null or empty: <c>llmkernels_cuda</c>): a value with a
    /// directory in it is that file alone; a bare file name is looked for where the native libraries are.
    /// </summary>
    internal static LoadResult Load(string? overrideValue)
    {
        // The CUDA library needs the CPU library (its lk_last_error carries CUDA's messages). Loaded first, through the managed
        // resolver, it is the one the CUDA library's dependency binds to (by soname), wherever the CUDA file lies: two copies
        // would give two lk_last_error()s, and the CUDA library's messages would go to the one the bindings never read.
        try
        {
            AbiCheck.EnsureCompatible();
        }
        catch (Exception e) when (e is DllNotFoundException or InvalidOperationException or EntryPointNotFoundException)
        {
            return new(0, null, $"the CUDA library needs the CPU library first: {e.Message}");
        }

        bool overridden = !string.IsNullOrEmpty(overrideValue);
        string file = overridden ? overrideValue! : NativeLibraryLoader.FileName(LibraryNames.Cuda);
        List<string> paths = CandidatePaths(overrideValue).ToList();
        if (NativeLibraryLoader.TryLoad(paths, out nint handle, out string? loaded, out string failures))
            return new(handle, loaded, null);

        string tried = string.Join("; ", failures.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        string why = paths.All(path => !File.Exists(path)) ? "not found" : "not loadable";
        if (overridden)
            return new(0, null, $"{OverrideVariable} names {file}, which is {why} ({OverrideVariable} is a diagnostic and test override: " +
                                $"unset it to load {NativeLibraryLoader.FileName(LibraryNames.Cuda)}); tried {tried}");
        why = why == "not found" ? "not built or not found" : why;
        return new(0, null, $"the CUDA library {file} is {why} (docs/cuda.md); tried {tried}");
    }

    /// <summary>The files <see cref="Load"/> tries, in order.</summary>
    internal static IEnumerable<string> CandidatePaths(string? overrideValue)
    {
        if (string.IsNullOrEmpty(overrideValue))
            return NativeLibraryLoader.CandidatePaths(LibraryNames.Cuda);
        if (overrideValue.IndexOfAny(['/', '\\']) >= 0 || Path.IsPathRooted(overrideValue))
            return [Path.GetFullPath(overrideValue)];
        return NativeLibraryLoader.CandidatePathsOf(overrideValue);
    }
}
