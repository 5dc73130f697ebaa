using System.Text;

namespace LlmKernels.Bindings.Generator;

/// <summary>
/// The generated files by repository-relative path: written where they changed (so unchanged
/// files keep their timestamps), or compared with the files in the tree for --verify.
/// </summary>
internal sealed class Outputs(string root)
{
    private readonly List<(string Path, string Text)> _files = [];

    public void Add(string relativePath, string text) => _files.Add((relativePath.Replace('\\', '/'), text));

    public void Write()
    {
        foreach ((string path, string text) in _files)
        {
            string full = Path.Combine(root, path);
            if (File.Exists(full) && File.ReadAllText(full) == text)
            {
                continue;
            }
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllText(full, text, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
            Console.WriteLine($"wrote {path}");
        }
    }

    /// <summary>One message per file whose content in the tree is not what the generator writes.</summary>
    public List<string> Differences()
    {
        var differences = new List<string>();
        foreach ((string path, string text) in _files)
        {
            string full = Path.Combine(root, path);
            if (!File.Exists(full))
            {
                differences.Add($"{path}: missing.");
                continue;
            }

            // A checkout that turned LF into CRLF still holds the same bindings.
            string[] committed = File.ReadAllText(full).Replace("\r\n", "\n").Split('\n');
            string[] generated = text.Split('\n');
            int line = 0;
            while (line < committed.Length && line < generated.Length && committed[line] == generated[line])
            {
                line++;
            }
            if (line < committed.Length || line < generated.Length)
            {
                differences.Add(
                    $"{path}: differs from the generator's output at line {line + 1}:\n" +
                    $"  committed: {(line < committed.Length ? committed[line] : "(end of file)")}\n" +
                    $"  generated: {(line < generated.Length ? generated[line] : "(end of file)")}");
            }
        }
        return differences;
    }
}
