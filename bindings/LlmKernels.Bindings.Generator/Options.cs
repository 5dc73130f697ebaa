namespace LlmKernels.Bindings.Generator;

/// <summary>
/// What to read and where to write, from the command line and response files. An @file argument
/// is read as one option per line ("--option value"; blank lines and '#' comments skipped). Paths
/// are relative to the repository root: --root, itself relative to the response file that names
/// it (or to the current folder on the command line); without it, the nearest folder above the
/// current one that holds .git.
/// </summary>
internal sealed record Options(
    string Root,
    string Namespace,
    IReadOnlyList<(string Path, string Library)> Headers,
    IReadOnlyList<string> ClangArguments,
    string CSharpOutput,
    string LayoutOutput,
    bool Verify)
{
    public const string Usage =
        "usage: LlmKernels.Bindings.Generator @bindings/generate.rsp [--verify]\n" +
        "  --root DIR                 repository root (relative to the response file naming it)\n" +
        "  --namespace NAME           namespace of the generated C#\n" +
        "  --header PATH=LIBRARY      a header and the LibraryNames constant of its library (repeatable)\n" +
        "  --clang-arg ARG            an argument for clang (repeatable)\n" +
        "  --system-include DIR       a folder for -isystem (repeatable)\n" +
        "  --csharp-output DIR        where the .g.cs files go\n" +
        "  --layout-output FILE       where the struct layout X-macro table goes\n" +
        "  --verify                   write nothing; fail if a committed output differs";

    public static Options Parse(IEnumerable<string> args)
    {
        string? root = null, @namespace = null, csharpOutput = null, layoutOutput = null;
        bool verify = false;
        var headers = new List<(string, string)>();
        var clangArguments = new List<string>();
        var systemIncludes = new List<string>();

        using IEnumerator<(string Text, string Folder)> arg = Expand(args, Directory.GetCurrentDirectory()).GetEnumerator();
        while (arg.MoveNext())
        {
            (string option, string folder) = arg.Current;
            if (option == "--verify")
            {
                verify = true;
                continue;
            }
            if (!arg.MoveNext())
            {
                throw new GeneratorException($"{option} needs a value.\n{Usage}");
            }

            string value = arg.Current.Text;
            switch (option)
            {
                case "--root": root = Path.GetFullPath(value, folder); break;
                case "--namespace": @namespace = value; break;
                case "--header": headers.Add(ParseHeader(value)); break;
                case "--clang-arg": clangArguments.Add(value); break;
                case "--system-include": systemIncludes.Add(value); break;
                case "--csharp-output": csharpOutput = value; break;
                case "--layout-output": layoutOutput = value; break;
                default: throw new GeneratorException($"unknown option '{option}'.\n{Usage}");
            }
        }

        root ??= FindRepositoryRoot();
        clangArguments.AddRange(systemIncludes.SelectMany(folder => new[] { "-isystem", Path.GetFullPath(folder, root) }));
        return new Options(
            root,
            @namespace ?? throw Missing("--namespace"),
            headers.Count > 0 ? headers : throw Missing("--header"),
            clangArguments,
            csharpOutput ?? throw Missing("--csharp-output"),
            layoutOutput ?? throw Missing("--layout-output"),
            verify);
    }

    private static IEnumerable<(string Text, string Folder)> Expand(IEnumerable<string> args, string folder)
    {
        foreach (string arg in args)
        {
            if (!arg.StartsWith('@'))
            {
                yield return (arg, folder);
                continue;
            }

            string file = Path.GetFullPath(arg[1..], folder);
            if (!File.Exists(file))
            {
                throw new GeneratorException($"response file {file} does not exist.");
            }
            IEnumerable<string> words = File.ReadAllLines(file)
                .Select(line => line.Trim())
                .Where(line => line.Length > 0 && !line.StartsWith('#'))
                .SelectMany(line => line.Split((char[]?)null, 2, StringSplitOptions.RemoveEmptyEntries));
            foreach ((string Text, string Folder) word in Expand(words, Path.GetDirectoryName(file)!))
            {
                yield return word;
            }
        }
    }

    private static (string, string) ParseHeader(string value)
    {
        string[] parts = value.Split('=', 2);
        return parts.Length == 2 && parts[0].Length > 0 && parts[1].Length > 0
            ? (parts[0], parts[1])
            : throw new GeneratorException($"--header {value}: expected PATH=LIBRARY, e.g. native/include/llmkernels.h=Cpu.");
    }

    private static string FindRepositoryRoot()
    {
        for (var folder = new DirectoryInfo(Directory.GetCurrentDirectory()); folder is not null; folder = folder.Parent)
        {
            if (Path.Exists(Path.Combine(folder.FullName, ".git")))
            {
                return folder.FullName;
            }
        }
        throw new GeneratorException("no --root given and no .git folder above the current one.");
    }

    private static GeneratorException Missing(string option) => new($"{option} is required.\n{Usage}");
}
