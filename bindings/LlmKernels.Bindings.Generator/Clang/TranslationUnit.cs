using System.Runtime.InteropServices;
using System.Text;
using static LlmKernels.Bindings.Generator.Clang.LibClang;

namespace LlmKernels.Bindings.Generator.Clang;

/// <summary>One parsed source file; any error diagnostic fails the parse with clang's own message.</summary>
internal sealed unsafe class TranslationUnit : IDisposable
{
    private readonly nint _index;
    private readonly nint _handle;

    private TranslationUnit(nint index, nint handle)
    {
        _index = index;
        _handle = handle;
    }

    public CXCursor Cursor => clang_getTranslationUnitCursor(_handle);

    /// <summary>Parses <paramref name="path"/>; <paramref name="contents"/>, when given, stands in for the file on disk.</summary>
    public static TranslationUnit Parse(string path, IReadOnlyList<string> arguments, string? contents = null)
    {
        nint index = clang_createIndex(0, 0);
        var strings = new List<nint>();
        try
        {
            nint Utf8(string text)
            {
                nint pointer = Marshal.StringToCoTaskMemUTF8(text);
                strings.Add(pointer);
                return pointer;
            }

            nint* argv = stackalloc nint[arguments.Count];
            for (int i = 0; i < arguments.Count; i++)
            {
                argv[i] = Utf8(arguments[i]);
            }

            var unsaved = new CXUnsavedFile();
            if (contents is not null)
            {
                unsaved.Filename = Utf8(path);
                unsaved.Contents = Utf8(contents);
                unsaved.Length = (nuint)Encoding.UTF8.GetByteCount(contents);
            }

            nint handle;
            int error = clang_parseTranslationUnit2(
                index, (byte*)Utf8(path), (byte**)argv, arguments.Count, &unsaved, contents is null ? 0u : 1u,
                DetailedPreprocessingRecord | SkipFunctionBodies, &handle);
            if (error != 0)
            {
                throw new GeneratorException($"{path}: libclang could not parse the file (CXErrorCode {error}).");
            }

            var unit = new TranslationUnit(index, handle);
            index = 0;
            unit.ThrowOnErrors();
            return unit;
        }
        finally
        {
            strings.ForEach(Marshal.FreeCoTaskMem);
            if (index != 0)
            {
                clang_disposeIndex(index);
            }
        }
    }

    /// <summary>The tokens a cursor spans, as written.</summary>
    public List<(CXTokenKind Kind, string Spelling)> Tokens(CXCursor cursor)
    {
        CXToken* tokens;
        uint count;
        clang_tokenize(_handle, clang_getCursorExtent(cursor), &tokens, &count);
        var result = new List<(CXTokenKind, string)>((int)count);
        for (uint i = 0; i < count; i++)
        {
            result.Add((clang_getTokenKind(tokens[i]), Take(clang_getTokenSpelling(_handle, tokens[i]))));
        }
        clang_disposeTokens(_handle, tokens, count);
        return result;
    }

    public void Dispose()
    {
        clang_disposeTranslationUnit(_handle);
        clang_disposeIndex(_index);
    }

    private void ThrowOnErrors()
    {
        var errors = new List<string>();
        uint count = clang_getNumDiagnostics(_handle);
        for (uint i = 0; i < count; i++)
        {
            nint diagnostic = clang_getDiagnostic(_handle, i);
            CXDiagnosticSeverity severity = clang_getDiagnosticSeverity(diagnostic);
            string message = Take(clang_formatDiagnostic(diagnostic, clang_defaultDiagnosticDisplayOptions()));
            clang_disposeDiagnostic(diagnostic);
            if (severity >= CXDiagnosticSeverity.Error)
            {
                errors.Add(message);
            }
            else if (severity == CXDiagnosticSeverity.Warning)
            {
                Console.Error.WriteLine(message);
            }
        }

        if (errors.Count > 0)
        {
            Dispose();
            throw new GeneratorException(string.Join('\n', errors));
        }
    }
}
