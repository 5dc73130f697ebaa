using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace LlmKernels.Peers;

/// <summary>
/// ggml's CPU kernels, as shipped in the NuGet package LLamaSharp.Backend.Cpu 0.30.0: the three
/// libraries are loaded by full path from the package folder, in dependency order, and the few
/// functions the peers call are resolved once into unmanaged function pointers. Declarations follow
/// ggml.h and ggml-cpu.h of that release (the ggml_peers.c probe beside roofline.c is the C view of the same calls).
/// </summary>
public sealed unsafe class GgmlLibrary
{
    public const string PackageId = "LLamaSharp.Backend.Cpu";
    public const string PackageVersion = "0.30.0";

    /// <summary>Overrides the folder searched for the ggml libraries.</summary>
    public const string DirectoryVariable = "LLMK_GGML_DIR";

    /// <summary>ggml_type values used here.</summary>
    public const int TypeF32 = 0;
    public const int TypeF16 = 1;
    public const int TypeI32 = 26;

    /// <summary>ggml_rope_ext's mode for NeoX pairing (GGML_ROPE_TYPE_NEOX): element i with i + n_dims/2.</summary>
    public const int RopeModeNeox = 2;

    /// <summary>GGML_ROPE_TYPE_NORMAL: pairs (2i, 2i + 1), GPT-J's.</summary>
    public const int RopeModeNormal = 0;

    private static readonly object s_gate = new();
    private static (GgmlLibrary? Library, string Reason)? s_loaded;

    /// <summary>
    /// The loaded library, or null with the reason it is unavailable. Never throws. The package
    /// ships one build per x86 level; the first call loads the one matching <paramref name="isa"/>
    /// (the level LlmKernels runs, so both sides use the same instruction set) and every later call
    /// gets that one: the builds share sonames, so a process can hold only one.
    /// </summary>
    public static GgmlLibrary? TryGet(CpuIsa isa, out string reason)
    {
        lock (s_gate)
        {
            s_loaded ??= Load(isa);
            reason = s_loaded.Value.Reason;
            return s_loaded.Value.Library;
        }
    }

    public string Directory { get; }

    // ggml-base: contexts, tensors, graphs
    public readonly delegate* unmanaged<GgmlInitParams, nint> Init;
    public readonly delegate* unmanaged<nint, void> Free;
    public readonly delegate* unmanaged<nuint> TensorOverhead;
    public readonly delegate* unmanaged<nuint> GraphOverhead;
    public readonly delegate* unmanaged<nint, int, long, nint> NewTensor1d;
    public readonly delegate* unmanaged<nint, int, long, long, nint> NewTensor2d;
    public readonly delegate* unmanaged<nint, int, long, long, long, nint> NewTensor3d;
    public readonly delegate* unmanaged<nint, int, long, long, long, long, nint> NewTensor4d;
    // ggml_view_2d(ctx, a, ne0, ne1, nb1, offset)
    public readonly delegate* unmanaged<nint, nint, long, long, nuint, nuint, nint> View2d;
    public readonly delegate* unmanaged<nint, nint, long, long, long, nuint, nuint, nuint, nint> View3d;
    public readonly delegate* unmanaged<nint, nint, float, nint> RmsNorm;
    public readonly delegate* unmanaged<nint, nint, float, nint> Norm;
    public readonly delegate* unmanaged<nint, nint, nint> Swiglu;
    public readonly delegate* unmanaged<nint, nint, nint, nint> SwigluSplit;
    // ggml_rope_ext_inplace(ctx, a, positions, freq_factors, n_dims, mode, n_ctx_orig, freq_base,
    //                       freq_scale, ext_factor, attn_factor, beta_fast, beta_slow)
    public readonly delegate* unmanaged<nint, nint, nint, nint, int, int, int, float, float, float, float, float, float, nint> RopeExtInplace;
    // ggml_flash_attn_ext(ctx, q, k, v, mask, scale, max_bias, logit_softcap)
    public readonly delegate* unmanaged<nint, nint, nint, nint, nint, float, float, float, nint> FlashAttnExt;
    public readonly delegate* unmanaged<nint, nint, nint, nint> Mul;
    public readonly delegate* unmanaged<nint, nint, nint, nint> Add;
    // MoE gating (llama.cpp's build_moe_ffn): scores, top-k, gathers, renormalisation
    public readonly delegate* unmanaged<nint, nint, nint> SoftMax;
    public readonly delegate* unmanaged<nint, nint, nint> Sigmoid;
    // ggml_argsort_top_k(ctx, a, k): a full descending ggml_argsort of each row, viewed to its first k
    public readonly delegate* unmanaged<nint, nint, int, nint> ArgsortTopK;
    public readonly delegate* unmanaged<nint, nint, nint, nint> GetRows;
    // ggml_set_rows(ctx, a, b, c): a view of a with rows c[i] set to b's rows
    public readonly delegate* unmanaged<nint, nint, nint, nint, nint> SetRows;
    public readonly delegate* unmanaged<nint, nint, float, nint> Fill;
    public readonly delegate* unmanaged<nint, nint, nint> SumRows;
    public readonly delegate* unmanaged<nint, nint, nint, nint> Div;
    public readonly delegate* unmanaged<nint, nint, float, nint> Scale;
    public readonly delegate* unmanaged<nint, nint, float, float, nint> Clamp;
    public readonly delegate* unmanaged<nint, nint, long, long, nint> Reshape2d;
    public readonly delegate* unmanaged<nint, nint, long, long, long, nint> Reshape3d;
    public readonly delegate* unmanaged<nint, nint, long, long, long, long, nint> Reshape4d;
    public readonly delegate* unmanaged<nint, nint> NewGraph;
    public readonly delegate* unmanaged<nint, nint, void> BuildForwardExpand;
    public readonly delegate* unmanaged<nint, void*> GetData;
    // ggml-cpu: planning and running a graph, thread pools
    public readonly delegate* unmanaged<void> CpuInit;
    public readonly delegate* unmanaged<nint, int, nint, GgmlCplan> GraphPlan;
    public readonly delegate* unmanaged<nint, GgmlCplan*, int> GraphCompute;
    public readonly delegate* unmanaged<void*, int, void> ThreadpoolParamsInit;
    public readonly delegate* unmanaged<void*, nint> ThreadpoolNew;
    public readonly delegate* unmanaged<nint, void> ThreadpoolFree;

    private GgmlLibrary(string directory, nint @base, nint cpu)
    {
        Directory = directory;
        Init = (delegate* unmanaged<GgmlInitParams, nint>)NativeLibrary.GetExport(@base, "ggml_init");
        Free = (delegate* unmanaged<nint, void>)NativeLibrary.GetExport(@base, "ggml_free");
        TensorOverhead = (delegate* unmanaged<nuint>)NativeLibrary.GetExport(@base, "ggml_tensor_overhead");
        GraphOverhead = (delegate* unmanaged<nuint>)NativeLibrary.GetExport(@base, "ggml_graph_overhead");
        NewTensor1d = (delegate* unmanaged<nint, int, long, nint>)NativeLibrary.GetExport(@base, "ggml_new_tensor_1d");
        NewTensor2d = (delegate* unmanaged<nint, int, long, long, nint>)NativeLibrary.GetExport(@base, "ggml_new_tensor_2d");
        NewTensor3d = (delegate* unmanaged<nint, int, long, long, long, nint>)NativeLibrary.GetExport(@base, "ggml_new_tensor_3d");
        NewTensor4d = (delegate* unmanaged<nint, int, long, long, long, long, nint>)NativeLibrary.GetExport(@base, "ggml_new_tensor_4d");
        FlashAttnExt = (delegate* unmanaged<nint, nint, nint, nint, nint, float, float, float, nint>)NativeLibrary.GetExport(@base, "ggml_flash_attn_ext");
        View2d = (delegate* unmanaged<nint, nint, long, long, nuint, nuint, nint>)NativeLibrary.GetExport(@base, "ggml_view_2d");
        View3d = (delegate* unmanaged<nint, nint, long, long, long, nuint, nuint, nuint, nint>)NativeLibrary.GetExport(@base, "ggml_view_3d");
        RmsNorm = (delegate* unmanaged<nint, nint, float, nint>)NativeLibrary.GetExport(@base, "ggml_rms_norm");
        Norm = (delegate* unmanaged<nint, nint, float, nint>)NativeLibrary.GetExport(@base, "ggml_norm");
        Swiglu = (delegate* unmanaged<nint, nint, nint>)NativeLibrary.GetExport(@base, "ggml_swiglu");
        SwigluSplit = (delegate* unmanaged<nint, nint, nint, nint>)NativeLibrary.GetExport(@base, "ggml_swiglu_split");
        RopeExtInplace = (delegate* unmanaged<nint, nint, nint, nint, int, int, int, float, float, float, float, float, float, nint>)NativeLibrary.GetExport(@base, "ggml_rope_ext_inplace");
        Mul = (delegate* unmanaged<nint, nint, nint, nint>)NativeLibrary.GetExport(@base, "ggml_mul");
        Add = (delegate* unmanaged<nint, nint, nint, nint>)NativeLibrary.GetExport(@base, "ggml_add");
        SoftMax = (delegate* unmanaged<nint, nint, nint>)NativeLibrary.GetExport(@base, "ggml_soft_max");
        Sigmoid = (delegate* unmanaged<nint, nint, nint>)NativeLibrary.GetExport(@base, "ggml_sigmoid");
        ArgsortTopK = (delegate* unmanaged<nint, nint, int, nint>)NativeLibrary.GetExport(@base, "ggml_argsort_top_k");
        GetRows = (delegate* unmanaged<nint, nint, nint, nint>)NativeLibrary.GetExport(@base, "ggml_get_rows");
        SetRows = (delegate* unmanaged<nint, nint, nint, nint, nint>)NativeLibrary.GetExport(@base, "ggml_set_rows");
        Fill = (delegate* unmanaged<nint, nint, float, nint>)NativeLibrary.GetExport(@base, "ggml_fill");
        SumRows = (delegate* unmanaged<nint, nint, nint>)NativeLibrary.GetExport(@base, "ggml_sum_rows");
        Div = (delegate* unmanaged<nint, nint, nint, nint>)NativeLibrary.GetExport(@base, "ggml_div");
        Scale = (delegate* unmanaged<nint, nint, float, nint>)NativeLibrary.GetExport(@base, "ggml_scale");
        Clamp = (delegate* unmanaged<nint, nint, float, float, nint>)NativeLibrary.GetExport(@base, "ggml_clamp");
        Reshape2d = (delegate* unmanaged<nint, nint, long, long, nint>)NativeLibrary.GetExport(@base, "ggml_reshape_2d");
        Reshape3d = (delegate* unmanaged<nint, nint, long, long, long, nint>)NativeLibrary.GetExport(@base, "ggml_reshape_3d");
        Reshape4d = (delegate* unmanaged<nint, nint, long, long, long, long, nint>)NativeLibrary.GetExport(@base, "ggml_reshape_4d");
        NewGraph = (delegate* unmanaged<nint, nint>)NativeLibrary.GetExport(@base, "ggml_new_graph");
        BuildForwardExpand = (delegate* unmanaged<nint, nint, void>)NativeLibrary.GetExport(@base, "ggml_build_forward_expand");
        GetData = (delegate* unmanaged<nint, void*>)NativeLibrary.GetExport(@base, "ggml_get_data");
        CpuInit = (delegate* unmanaged<void>)NativeLibrary.GetExport(cpu, "ggml_cpu_init");
        GraphPlan = (delegate* unmanaged<nint, int, nint, GgmlCplan>)NativeLibrary.GetExport(cpu, "ggml_graph_plan");
        GraphCompute = (delegate* unmanaged<nint, GgmlCplan*, int>)NativeLibrary.GetExport(cpu, "ggml_graph_compute");
        ThreadpoolParamsInit = (delegate* unmanaged<void*, int, void>)NativeLibrary.GetExport(@base, "ggml_threadpool_params_init");
        ThreadpoolNew = (delegate* unmanaged<void*, nint>)NativeLibrary.GetExport(cpu, "ggml_threadpool_new");
        ThreadpoolFree = (delegate* unmanaged<nint, void>)NativeLibrary.GetExport(cpu, "ggml_threadpool_free");
        CpuInit(); // fills ggml's f16 tables; idempotent
    }

    private static (GgmlLibrary?, string) Load(CpuIsa isa)
    {
        var tried = new List<string>();
        foreach (var directory in CandidateDirectories(isa))
        {
            string[] files = [.. new[] { "ggml-base", "ggml-cpu", "ggml" }.Select(name => Path.Combine(directory, FileName(name)))];
            if (!files.All(File.Exists))
            {
                tried.Add($"{directory}: not found");
                continue;
            }
            try
            {
                // Dependency order: ggml-cpu and ggml name ggml-base by soname, which is then already loaded.
                nint @base = NativeLibrary.Load(files[0]);
                nint cpu = NativeLibrary.Load(files[1]);
                NativeLibrary.Load(files[2]);
                return (new GgmlLibrary(directory, @base, cpu), "");
            }
            catch (Exception e) when (e is DllNotFoundException or BadImageFormatException or EntryPointNotFoundException)
            {
                tried.Add($"{directory}: {e.Message}");
            }
        }
        return (null, $"{PackageId} {PackageVersion} not found (run `dotnet restore`, or set {DirectoryVariable}); tried " + string.Join("; ", tried));
    }

    /// <summary>The package's native folder for this OS and CPU, under each NuGet packages root.</summary>
    private static IEnumerable<string> CandidateDirectories(CpuIsa isa)
    {
        if (Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } overridden)
            yield return overridden;
        string? relative = RuntimeFolder(isa);
        if (relative is null)
            yield break;
        var roots = new List<string>();
        // The folder restore used for this build, then the documented global-packages locations.
        if (typeof(GgmlLibrary).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
                .FirstOrDefault(a => a.Key == "LLamaSharpBackendCpuPath")?.Value is { Length: > 0 } restored)
            roots.Add(restored);
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        roots.Add(Path.Combine(packages, PackageId.ToLowerInvariant(), PackageVersion));
        foreach (var root in roots.Distinct())
            yield return Path.Combine(root, relative);
    }

    /// <summary>The package's build for <paramref name="isa"/>: LLamaSharp picks among the same folders by CPUID.</summary>
    private static string? RuntimeFolder(CpuIsa isa)
    {
        if (RuntimeInformation.ProcessArchitecture != Architecture.X64)
            return null;
        string level = isa == CpuIsa.Avx512 && Avx512F.IsSupported && Avx512BW.IsSupported ? "avx512"
            : isa != CpuIsa.Scalar && Avx2.IsSupported ? "avx2"
            : "noavx";
        string os = OperatingSystem.IsWindows() ? "win-x64" : OperatingSystem.IsLinux() ? "linux-x64" : "";
        return os.Length == 0 ? null : Path.Combine("LLamaSharpRuntimes", os, "native", level);
    }

    private static string FileName(string name) => OperatingSystem.IsWindows() ? name + ".dll" : "lib" + name + ".so";
}

/// <summary>struct ggml_init_params, passed by value.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct GgmlInitParams
{
    public nuint MemSize;
    public nint MemBuffer;
    public byte NoAlloc; // C bool
}

/// <summary>
/// struct ggml_cplan as of this ggml release, returned by value from ggml_graph_plan. The reserved
/// tail makes the caller's copy larger than the callee writes, so a field added by a later ggml
/// cannot write past it (the struct is returned through memory either way).
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct GgmlCplan
{
    public nuint WorkSize;
    public byte* WorkData;
    public int NThreads;
    public nint Threadpool;
    public nint AbortCallback;
    public nint AbortCallbackData;
    public fixed byte Reserved[64];
}
