namespace LlmKernels.Interop;

/// <summary>The native libraries' names, as the generated <c>[LibraryImport]</c>s use them.</summary>
internal static class LibraryNames
{
    internal const string Cpu = "llmkernels";
    internal const string Cuda = "llmkernels_cuda";
}
