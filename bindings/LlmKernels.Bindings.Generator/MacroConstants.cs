using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using LlmKernels.Bindings.Generator.Clang;
using static LlmKernels.Bindings.Generator.Clang.LibClang;

namespace LlmKernels.Bindings.Generator;

/// <summary>
/// Object-like LK_ macros whose value is an integer constant expression become C# constants.
/// Which macros qualify is decided from their tokens (integer literals, arithmetic and bitwise
/// operators, parentheses, earlier such macros); their type and value come from clang itself,
/// by compiling each one in a probe file that includes the header, so C's rules for literal
/// suffixes and promotions hold exactly ((1u &lt;&lt; 3) is an unsigned int 8).
/// </summary>
internal static partial class MacroConstants
{
    internal sealed record Candidate(string CName, string Definition, IReadOnlyList<string> Comment);

    private static readonly HashSet<string> Operators = ["(", ")", "+", "-", "*", "/", "%", "<<", ">>", "&", "|", "^", "~"];

    /// <summary>The macro as a candidate constant, or null when it is not one (LK_API, header guards).</summary>
    public static Candidate? Read(TranslationUnit unit, CXCursor macro, IReadOnlySet<string> earlier, HeaderText text)
    {
        if (clang_Cursor_isMacroFunctionLike(macro) != 0 || clang_Cursor_isMacroBuiltin(macro) != 0)
        {
            return null;
        }

        List<(CXTokenKind Kind, string Spelling)> tokens = unit.Tokens(macro);
        string name = tokens[0].Spelling;
        var body = tokens.Skip(1).ToList();
        bool integral = body.Count > 0 && body.Any(token => token.Kind is CXTokenKind.Literal or CXTokenKind.Identifier) && body.All(token => token.Kind switch
        {
            CXTokenKind.Literal => IntegerLiteral().IsMatch(token.Spelling),
            CXTokenKind.Punctuation => Operators.Contains(token.Spelling),
            CXTokenKind.Identifier => earlier.Contains(token.Spelling),
            _ => false,
        });
        return name.StartsWith("LK_", StringComparison.Ordinal) && integral
            ? new Candidate(name, "#define " + text.Span(macro.Start(), macro.End()), text.Comment(macro.Start(), macro.End()))
            : null;
    }

    /// <summary>Types and values of <paramref name="candidates"/>, all defined in <paramref name="headerPath"/>.</summary>
    public static List<Constant> Evaluate(string headerPath, IReadOnlyList<string> clangArguments, IReadOnlyList<Candidate> candidates)
    {
        if (candidates.Count == 0)
        {
            return [];
        }

        var probe = new StringBuilder($"#include \"{headerPath.Replace('\\', '/')}\"\n");
        for (int i = 0; i < candidates.Count; i++)
        {
            probe.Append($"static const __typeof__(({candidates[i].CName})) lk_bindings_probe_{i} = ({candidates[i].CName});\n");
        }

        string probePath = Path.Combine(Path.GetDirectoryName(headerPath)!, "lk_bindings_probe.c");
        using TranslationUnit unit = ParseProbe(probePath, clangArguments, probe.ToString());
        var probes = Children(unit.Cursor).Where(c => c.Kind == CXCursorKind.VarDecl && c.IsFromMainFile()).ToList();
        return candidates.Select((candidate, i) => ToConstant(candidate, probes[i])).ToList();
    }

    private static TranslationUnit ParseProbe(string path, IReadOnlyList<string> clangArguments, string probe)
    {
        try
        {
            // -w: the header's own warnings were reported when it was parsed.
            return TranslationUnit.Parse(path, [.. clangArguments, "-w"], probe);
        }
        catch (GeneratorException e)
        {
            throw new GeneratorException($"an LK_ macro that looks like an integer is not one:\n{e.Message}");
        }
    }

    private static Constant ToConstant(Candidate macro, CXCursor probe)
    {
        CXTypeKind kind = clang_getCanonicalType(clang_getCursorType(probe)).Kind;
        (string type, string suffix) = kind switch
        {
            CXTypeKind.Int => ("int", ""),
            CXTypeKind.UInt => ("uint", "u"),
            CXTypeKind.Long or CXTypeKind.LongLong => ("long", "L"),
            CXTypeKind.ULong or CXTypeKind.ULongLong => ("ulong", "UL"),
            _ => throw new GeneratorException($"{macro.CName}: an integer macro of C type kind {kind} has no C# mapping."),
        };

        nint result = clang_Cursor_Evaluate(probe);
        try
        {
            if (result == 0 || clang_EvalResult_getKind(result) != EvalResultInt)
            {
                throw new GeneratorException($"{macro.CName}: clang does not evaluate it to an integer.");
            }
            string value = clang_EvalResult_isUnsignedInt(result) != 0
                ? clang_EvalResult_getAsUnsigned(result).ToString(CultureInfo.InvariantCulture)
                : clang_EvalResult_getAsLongLong(result).ToString(CultureInfo.InvariantCulture);
            return new Constant(macro.CName, Naming.Pascal(macro.CName), type, value + suffix, macro.Definition, macro.Comment);
        }
        finally
        {
            if (result != 0)
            {
                clang_EvalResult_dispose(result);
            }
        }
    }

    [GeneratedRegex(@"^(0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)([uU](ll|LL|l|L)?|(ll|LL|l|L)[uU]?)?$")]
    private static partial Regex IntegerLiteral();
}
