using System.Text;

namespace LlmKernels.Bindings.Generator.Emit;

/// <summary>Text with LF line endings, four-space indentation and a final newline.</summary>
internal sealed class CodeWriter
{
    private readonly StringBuilder _text = new();
    private int _depth;
    private string _lastLine = "";

    public void Line(string line = "")
    {
        if (line.Length > 0)
        {
            _text.Append(' ', 4 * _depth).Append(line);
        }
        _text.Append('\n');
        _lastLine = line;
    }

    public void Open()
    {
        Line("{");
        _depth++;
    }

    public void Close()
    {
        _depth--;
        Line("}");
    }

    /// <summary>A blank line between members, none right after an opening brace or another blank line.</summary>
    public void Separate()
    {
        if (_lastLine is not ("" or "{"))
        {
            Line();
        }
    }

    /// <summary>An XML doc summary: the C name, then the header's comment for it.</summary>
    public void Summary(string cName, IReadOnlyList<string> comment)
    {
        string head = $"<c>{cName}</c>" + (comment.Count > 0 ? ": " + Escape(comment[0]) : "");
        if (comment.Count <= 1)
        {
            Line($"/// <summary>{head}</summary>");
            return;
        }

        Line("/// <summary>");
        Line("/// " + head);
        foreach (string line in comment.Skip(1))
        {
            Line(line.Length > 0 ? "/// " + Escape(line) : "///");
        }
        Line("/// </summary>");
    }

    public override string ToString() => _text.ToString();

    private static string Escape(string text) => text.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;");
}
