namespace LlmKernels.Tests;

/// <summary>
/// Tests that change the process environment run alone: a context created meanwhile by another
/// test would see the variable, and setenv racing getenv on another thread is undefined behaviour.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessEnvironmentCollection
{
    public const string Name = "Process environment";
}
