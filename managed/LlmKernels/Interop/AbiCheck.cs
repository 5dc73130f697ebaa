namespace LlmKernels.Interop;

/// <summary>
/// Refuses a native library built from a different header than these bindings, at first use,
/// with a message saying both versions (a silent mismatch would mean wrong struct layouts).
/// </summary>
internal static class AbiCheck
{
    private static volatile bool s_checked;

    internal static void EnsureCompatible()
    {
        if (!s_checked)
            Check();
    }

    private static unsafe void Check()
    {
        int native = NativeMethods.AbiVersion();
        if (native != NativeConstants.AbiVersion)
        {
            throw new InvalidOperationException(
                $"The native library llmkernels (version {NativeStatus.Utf8(NativeMethods.Version())}) has ABI version {native}, " +
                $"but this LlmKernels assembly was generated for ABI version {NativeConstants.AbiVersion}. " +
                "Rebuild both from the same checkout, or use matching packages.");
        }
        s_checked = true;
    }
}
