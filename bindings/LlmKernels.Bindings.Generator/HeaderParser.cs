using LlmKernels.Bindings.Generator.Clang;
using static LlmKernels.Bindings.Generator.Clang.LibClang;

namespace LlmKernels.Bindings.Generator;

/// <summary>
/// Reads one header into the model: the enums and structs it names through typedefs, the
/// functions it exports and its integer LK_ macros, in declaration order. Declarations from the
/// files it includes belong to those files and are left out.
/// </summary>
internal sealed class HeaderParser(string root, IReadOnlyList<string> clangArguments)
{
    private static readonly HashSet<string> FixedBufferTypes =
        ["byte", "sbyte", "short", "ushort", "int", "uint", "long", "ulong", "float", "double"];

    public Header Parse(string relativePath, string library)
    {
        string path = Path.GetFullPath(Path.Combine(root, relativePath));
        if (!File.Exists(path))
        {
            throw new GeneratorException($"{relativePath}: no such header.");
        }

        var text = new HeaderText(path);
        var types = new List<TypeDeclaration>();
        var functions = new List<Function>();
        var macros = new List<MacroConstants.Candidate>();
        using (TranslationUnit unit = TranslationUnit.Parse(path, clangArguments))
        {
            foreach (CXCursor cursor in Children(unit.Cursor).Where(c => c.IsFromMainFile()))
            {
                string where = $"{relativePath}:{cursor.Start().Line}";
                switch (cursor.Kind)
                {
                    case CXCursorKind.TypedefDecl when ReadType(cursor, text, where) is { } type:
                        types.Add(type);
                        break;
                    case CXCursorKind.FunctionDecl when IsExported(cursor):
                        functions.Add(ReadFunction(cursor, text.Comment(cursor.Start(), cursor.End()), where));
                        break;
                    case CXCursorKind.MacroDefinition
                        when MacroConstants.Read(unit, cursor, macros.Select(m => m.CName).ToHashSet(), text) is { } macro:
                        macros.Add(macro);
                        break;
                }
            }
        }

        return new Header(relativePath, library, types, functions, MacroConstants.Evaluate(path, clangArguments, macros));
    }

    // An enum or struct defined by this typedef; opaque handles and aliases of other types are
    // mapped where they are used instead.
    private static TypeDeclaration? ReadType(CXCursor typedef, HeaderText text, string where)
    {
        CXType underlying = TypeMapper.Unelaborated(clang_getTypedefDeclUnderlyingType(typedef));
        if (underlying.Kind is not (CXTypeKind.Enum or CXTypeKind.Record) || TypeMapper.IsOpaque(underlying))
        {
            return null;
        }

        string cName = typedef.Spelling();
        CXCursor declaration = clang_getTypeDeclaration(underlying);
        if (clang_Cursor_isAnonymous(declaration) == 0 && declaration.Spelling() != cName)
        {
            // A reference spelled 'struct tag' is named from the tag, so the two must agree.
            throw new GeneratorException($"{where}: typedef {cName} names the tag {declaration.Spelling()}; give both the same name.");
        }
        IReadOnlyList<string> comment = text.Comment(typedef.Start(), typedef.End());
        return declaration.Kind switch
        {
            CXCursorKind.EnumDecl => new EnumDeclaration(cName, Naming.Pascal(cName), comment, ReadMembers(cName, declaration, text, where)),
            CXCursorKind.StructDecl => new StructDeclaration(cName, Naming.Pascal(cName), comment, ReadFields(cName, declaration, text, where)),
            _ => throw new GeneratorException($"{where}: {cName}: unions are not supported yet."),
        };
    }

    private static List<EnumMember> ReadMembers(string enumName, CXCursor declaration, HeaderText text, string where) =>
        Children(declaration).Where(c => c.Kind == CXCursorKind.EnumConstantDecl).Select(member =>
        {
            long value = clang_getEnumConstantDeclValue(member);
            if (value is < int.MinValue or > int.MaxValue)
            {
                throw new GeneratorException($"{where}: {member.Spelling()} = {value} does not fit the enum's C# type, int.");
            }
            string cName = member.Spelling();
            return new EnumMember(cName, Naming.EnumMember(enumName, cName), value, text.Comment(member.Start(), member.End()));
        }).ToList();

    private static List<Field> ReadFields(string structName, CXCursor declaration, HeaderText text, string where) =>
        Children(declaration).Select(field =>
        {
            string cName = field.Spelling();
            string context = $"{where}: {structName}.{cName}";
            if (field.Kind != CXCursorKind.FieldDecl || clang_Cursor_isBitField(field) != 0)
            {
                throw new GeneratorException($"{context}: only plain fields are supported (no bit-fields or nested records).");
            }

            CXType type = clang_getCursorType(field);
            int? length = null;
            string managed;
            if (type.Kind == CXTypeKind.ConstantArray)
            {
                length = checked((int)clang_getArraySize(type));
                managed = TypeMapper.Map(clang_getArrayElementType(type), context);
                if (!FixedBufferTypes.Contains(managed))
                {
                    throw new GeneratorException($"{context}: an array of {managed} cannot be a C# fixed buffer.");
                }
            }
            else
            {
                managed = TypeMapper.Map(type, context);
            }
            return new Field(cName, Naming.Pascal(cName), managed, type.Spelling(), length, text.Comment(field.Start(), field.End()));
        }).ToList();

    private static Function ReadFunction(CXCursor function, IReadOnlyList<string> comment, string where)
    {
        string cName = function.Spelling();
        CXType result = clang_getResultType(clang_getCursorType(function));
        var parameters = new List<Parameter>();
        int count = clang_Cursor_getNumArguments(function);
        for (int i = 0; i < count; i++)
        {
            CXCursor argument = clang_Cursor_getArgument(function, (uint)i);
            string name = argument.Spelling() is { Length: > 0 } spelled ? spelled : $"arg{i}";
            CXType type = clang_getCursorType(argument);
            parameters.Add(new Parameter(name, Naming.Camel(name), TypeMapper.Map(type, $"{where}: {cName}({name})"), type.Spelling()));
        }
        return new Function(
            cName, Naming.Pascal(cName), TypeMapper.Map(result, $"{where}: {cName} result"), result.Spelling(), parameters, comment);
    }

    // static and inline functions in the header are helpers for C callers, not library exports.
    private static bool IsExported(CXCursor function) =>
        clang_Cursor_getStorageClass(function) != StorageClassStatic && clang_Cursor_isFunctionInlined(function) == 0;
}
