using static LlmKernels.Bindings.Generator.Clang.LibClang;

namespace LlmKernels.Bindings.Generator.Clang;

/// <summary>A place in a source file: 1-based line and 0-based byte offset.</summary>
internal readonly record struct SourcePosition(int Line, int Offset);

internal static unsafe class CursorExtensions
{
    public static string Spelling(this CXCursor cursor) => Take(clang_getCursorSpelling(cursor));

    public static string Spelling(this CXType type) => Take(clang_getTypeSpelling(type));

    public static bool IsFromMainFile(this CXCursor cursor) =>
        clang_Location_isFromMainFile(clang_getCursorLocation(cursor)) != 0;

    /// <summary>Where the declaration starts, macro expansions (LK_API) resolved to where they are written.</summary>
    public static SourcePosition Start(this CXCursor cursor) => Position(clang_getRangeStart(clang_getCursorExtent(cursor)));

    public static SourcePosition End(this CXCursor cursor) => Position(clang_getRangeEnd(clang_getCursorExtent(cursor)));

    private static SourcePosition Position(CXSourceLocation location)
    {
        uint line, column, offset;
        clang_getExpansionLocation(location, null, &line, &column, &offset);
        return new SourcePosition((int)line, (int)offset);
    }
}
