using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace LlmKernels.Bindings.Generator.Clang;

// The functions of the libclang C API (clang-c/Index.h) the generator uses, declared by hand
// because ClangSharp is not on the package feed; structs are passed and returned by value.
internal static unsafe partial class LibClang
{
    private const string Library = "libclang";

    public const uint DetailedPreprocessingRecord = 0x01;
    public const uint SkipFunctionBodies = 0x40;
    public const int StorageClassStatic = 3;
    public const int EvalResultInt = 1;
    public const long TypeLayoutIncomplete = -2;

    [LibraryImport(Library)] public static partial nint clang_createIndex(int excludeDeclarationsFromPch, int displayDiagnostics);
    [LibraryImport(Library)] public static partial void clang_disposeIndex(nint index);

    [LibraryImport(Library)]
    public static partial int clang_parseTranslationUnit2(
        nint index, byte* sourceFilename, byte** commandLineArgs, int numCommandLineArgs,
        CXUnsavedFile* unsavedFiles, uint numUnsavedFiles, uint options, nint* translationUnit);

    [LibraryImport(Library)] public static partial void clang_disposeTranslationUnit(nint translationUnit);
    [LibraryImport(Library)] public static partial CXCursor clang_getTranslationUnitCursor(nint translationUnit);

    [LibraryImport(Library)] public static partial uint clang_getNumDiagnostics(nint translationUnit);
    [LibraryImport(Library)] public static partial nint clang_getDiagnostic(nint translationUnit, uint index);
    [LibraryImport(Library)] public static partial CXDiagnosticSeverity clang_getDiagnosticSeverity(nint diagnostic);
    [LibraryImport(Library)] public static partial uint clang_defaultDiagnosticDisplayOptions();
    [LibraryImport(Library)] public static partial CXString clang_formatDiagnostic(nint diagnostic, uint options);
    [LibraryImport(Library)] public static partial void clang_disposeDiagnostic(nint diagnostic);

    [LibraryImport(Library)] public static partial byte* clang_getCString(CXString text);
    [LibraryImport(Library)] public static partial void clang_disposeString(CXString text);

    [LibraryImport(Library)]
    public static partial uint clang_visitChildren(
        CXCursor parent, delegate* unmanaged[Cdecl]<CXCursor, CXCursor, nint, CXChildVisitResult> visitor, nint clientData);

    [LibraryImport(Library)] public static partial CXString clang_getCursorSpelling(CXCursor cursor);
    [LibraryImport(Library)] public static partial CXType clang_getCursorType(CXCursor cursor);
    [LibraryImport(Library)] public static partial CXSourceLocation clang_getCursorLocation(CXCursor cursor);
    [LibraryImport(Library)] public static partial CXSourceRange clang_getCursorExtent(CXCursor cursor);
    [LibraryImport(Library)] public static partial int clang_Location_isFromMainFile(CXSourceLocation location);
    [LibraryImport(Library)] public static partial CXSourceLocation clang_getRangeStart(CXSourceRange range);
    [LibraryImport(Library)] public static partial CXSourceLocation clang_getRangeEnd(CXSourceRange range);
    [LibraryImport(Library)] public static partial void clang_getExpansionLocation(CXSourceLocation location, nint* file, uint* line, uint* column, uint* offset);
    [LibraryImport(Library)] public static partial int clang_Cursor_getStorageClass(CXCursor cursor);
    [LibraryImport(Library)] public static partial uint clang_Cursor_isFunctionInlined(CXCursor cursor);
    [LibraryImport(Library)] public static partial uint clang_Cursor_isBitField(CXCursor cursor);
    [LibraryImport(Library)] public static partial uint clang_Cursor_isAnonymous(CXCursor cursor);
    [LibraryImport(Library)] public static partial uint clang_Cursor_isMacroFunctionLike(CXCursor cursor);
    [LibraryImport(Library)] public static partial uint clang_Cursor_isMacroBuiltin(CXCursor cursor);
    [LibraryImport(Library)] public static partial int clang_Cursor_getNumArguments(CXCursor cursor);
    [LibraryImport(Library)] public static partial CXCursor clang_Cursor_getArgument(CXCursor cursor, uint index);
    [LibraryImport(Library)] public static partial long clang_getEnumConstantDeclValue(CXCursor cursor);
    [LibraryImport(Library)] public static partial CXType clang_getTypedefDeclUnderlyingType(CXCursor cursor);

    [LibraryImport(Library)] public static partial CXString clang_getTypeSpelling(CXType type);
    [LibraryImport(Library)] public static partial CXType clang_getCanonicalType(CXType type);
    [LibraryImport(Library)] public static partial CXType clang_getPointeeType(CXType type);
    [LibraryImport(Library)] public static partial CXType clang_Type_getNamedType(CXType type);
    [LibraryImport(Library)] public static partial CXType clang_getResultType(CXType type);
    [LibraryImport(Library)] public static partial CXType clang_getArrayElementType(CXType type);
    [LibraryImport(Library)] public static partial long clang_getArraySize(CXType type);
    [LibraryImport(Library)] public static partial long clang_Type_getSizeOf(CXType type);
    [LibraryImport(Library)] public static partial CXCursor clang_getTypeDeclaration(CXType type);
    [LibraryImport(Library)] public static partial CXString clang_getTypedefName(CXType type);

    [LibraryImport(Library)] public static partial void clang_tokenize(nint translationUnit, CXSourceRange range, CXToken** tokens, uint* numTokens);
    [LibraryImport(Library)] public static partial CXTokenKind clang_getTokenKind(CXToken token);
    [LibraryImport(Library)] public static partial CXString clang_getTokenSpelling(nint translationUnit, CXToken token);
    [LibraryImport(Library)] public static partial void clang_disposeTokens(nint translationUnit, CXToken* tokens, uint numTokens);

    [LibraryImport(Library)] public static partial nint clang_Cursor_Evaluate(CXCursor cursor);
    [LibraryImport(Library)] public static partial int clang_EvalResult_getKind(nint result);
    [LibraryImport(Library)] public static partial uint clang_EvalResult_isUnsignedInt(nint result);
    [LibraryImport(Library)] public static partial ulong clang_EvalResult_getAsUnsigned(nint result);
    [LibraryImport(Library)] public static partial long clang_EvalResult_getAsLongLong(nint result);
    [LibraryImport(Library)] public static partial void clang_EvalResult_dispose(nint result);

    /// <summary>Copies a libclang string and frees it.</summary>
    public static string Take(CXString text)
    {
        string value = Marshal.PtrToStringUTF8((nint)clang_getCString(text)) ?? "";
        clang_disposeString(text);
        return value;
    }

    /// <summary>The direct children of a cursor, in source order.</summary>
    public static List<CXCursor> Children(CXCursor parent)
    {
        var children = new List<CXCursor>();
        GCHandle handle = GCHandle.Alloc(children);
        try
        {
            clang_visitChildren(parent, &CollectChild, GCHandle.ToIntPtr(handle));
        }
        finally
        {
            handle.Free();
        }
        return children;
    }

    [UnmanagedCallersOnly(CallConvs = new[] { typeof(CallConvCdecl) })]
    private static CXChildVisitResult CollectChild(CXCursor cursor, CXCursor parent, nint clientData)
    {
        ((List<CXCursor>)GCHandle.FromIntPtr(clientData).Target!).Add(cursor);
        return CXChildVisitResult.Continue;
    }
}
