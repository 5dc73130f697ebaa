using LlmKernels.Bindings.Generator;
using LlmKernels.Bindings.Generator.Emit;

// Reads native/include/*.h through libclang and writes the raw P/Invoke layer and the native
// struct layout table (bindings/README.md). Exit codes: 0 done (or up to date with --verify),
// 1 --verify found a committed output that differs, 2 a header or option the generator cannot
// handle, with a message saying which.
try
{
    Options options = Options.Parse(args);
    var parser = new HeaderParser(options.Root, options.ClangArguments);
    List<Header> headers = options.Headers.Select(header => parser.Parse(header.Path, header.Library)).ToList();

    var csharp = new CSharpEmitter(options.Namespace, headers);
    var outputs = new Outputs(options.Root);
    outputs.Add(Path.Combine(options.CSharpOutput, CSharpEmitter.MethodsFile), csharp.Methods());
    outputs.Add(Path.Combine(options.CSharpOutput, CSharpEmitter.TypesFile), csharp.Types());
    outputs.Add(Path.Combine(options.CSharpOutput, CSharpEmitter.ConstantsFile), csharp.Constants());
    outputs.Add(Path.Combine(options.CSharpOutput, CSharpEmitter.AttributeFile), csharp.Attribute());
    outputs.Add(options.LayoutOutput, LayoutEmitter.Table(headers));

    if (!options.Verify)
    {
        outputs.Write();
        return 0;
    }

    List<string> differences = outputs.Differences();
    differences.ForEach(Console.Error.WriteLine);
    if (differences.Count > 0)
    {
        Console.Error.WriteLine(
            "The committed bindings do not match the headers. Regenerate them with\n" +
            "  dotnet run --project bindings/LlmKernels.Bindings.Generator -c Release -- @bindings/generate.rsp");
        return 1;
    }
    Console.WriteLine($"Bindings are up to date with {string.Join(", ", headers.Select(h => h.Path))}.");
    return 0;
}
catch (GeneratorException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
catch (DllNotFoundException e)
{
    Console.Error.WriteLine(
        $"error: libclang could not be loaded: {e.Message}\n" +
        "The generator finds it through the libclang.runtime.<rid> package its project references (linux-x64).");
    return 2;
}
