using System.Text;
using System.Text.RegularExpressions;
using LlmKernels.Bindings.Generator.Clang;

namespace LlmKernels.Bindings.Generator;

/// <summary>
/// A header's source text, for what clang's cursors do not carry as written: a macro's definition
/// and the comment beside a declaration, that is a comment block ending on the line just above it
/// and starting a line of its own, plus a comment after it on its last line. (Clang's own comment
/// attachment merges the trailing comments of consecutive fields and attaches section banners
/// across blank lines.)
/// </summary>
internal sealed partial class HeaderText
{
    private readonly byte[] _bytes;
    private readonly string[] _lines;

    public HeaderText(string path)
    {
        _bytes = File.ReadAllBytes(path);
        _lines = Encoding.UTF8.GetString(_bytes).Split('\n').Select(line => line.TrimEnd('\r')).ToArray();
    }

    /// <summary>The text from <paramref name="start"/> to <paramref name="end"/>, each run of white space made one space.</summary>
    public string Span(SourcePosition start, SourcePosition end) =>
        WhiteSpace().Replace(Encoding.UTF8.GetString(_bytes, start.Offset, end.Offset - start.Offset), " ");

    /// <summary>The comment lines of the declaration spanning <paramref name="start"/> to <paramref name="end"/>.</summary>
    public IReadOnlyList<string> Comment(SourcePosition start, SourcePosition end) => [.. Leading(start.Line), .. Trailing(end)];

    private IEnumerable<string> Leading(int line)
    {
        int last = line - 2;
        if (last < 0)
        {
            return [];
        }

        int first = last;
        if (_lines[last].TrimEnd().EndsWith("*/", StringComparison.Ordinal))
        {
            while (first > 0 && !_lines[first].Contains("/*", StringComparison.Ordinal))
            {
                first--;
            }
        }
        else
        {
            while (first >= 0 && _lines[first].TrimStart().StartsWith("//", StringComparison.Ordinal))
            {
                first--;
            }
            first++;
        }

        bool standalone = first <= last && _lines[first].TrimStart().StartsWith('/');
        return standalone ? Clean(_lines[first..(last + 1)]) : [];
    }

    private IEnumerable<string> Trailing(SourcePosition end)
    {
        int lineEnd = Array.IndexOf(_bytes, (byte)'\n', end.Offset);
        string rest = Encoding.UTF8.GetString(_bytes, end.Offset, (lineEnd < 0 ? _bytes.Length : lineEnd) - end.Offset);
        Match comment = TrailingComment().Match(rest);
        return comment.Success ? Clean([comment.Groups[1].Value]) : [];
    }

    private static IEnumerable<string> Clean(IEnumerable<string> lines)
    {
        var text = lines
            .Select(line => CommentMarks().Replace(line.Trim(), ""))
            .Select(line => line.TrimEnd())
            .ToList();
        while (text.Count > 0 && text[^1].Length == 0)
        {
            text.RemoveAt(text.Count - 1);
        }
        return text.SkipWhile(line => line.Length == 0);
    }

    // White space, line continuations included.
    [GeneratedRegex(@"(?:\\\r?\n|\s)+")]
    private static partial Regex WhiteSpace();

    // A comment after the declaration's ';' or ','; only one on the same line counts.
    [GeneratedRegex(@"^[\s;,]*(/\*.*?\*/|//.*)\s*$")]
    private static partial Regex TrailingComment();

    // "/* ", "/** ", "//! ", " * " at the start of a comment line, " */" at its end.
    [GeneratedRegex(@"^(/\*[*!]?<?|//[/!]?<?|\*(?!/))\s?|\s*\*/$")]
    private static partial Regex CommentMarks();
}
