namespace LlmKernels.Bindings.Generator;

/// <summary>A problem in the header or the options, reported as one message and exit code 2.</summary>
internal sealed class GeneratorException(string message) : Exception(message);
