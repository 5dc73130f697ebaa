// The build: native (CMake), bindings, managed, tests, bench, pack. Run through ./build.sh or
// ./build.ps1, which restore Cake from the local tool manifest first.
//
//   ./build.sh                    Build, then `llmk demo` and `llmk bench --quick` (the main job)
//   ./build.sh --target=Test      native tests (also under ASan+UBSan), bindings drift check, xunit (CUDA tests on the
//                                 emulator; --cuda-library=libllmkernels_cuda.so on a GPU host)
//   ./build.sh --target=Bench     the BenchmarkDotNet suites (long)
//   ./build.sh --target=Bindings  regenerate bindings/generated from native/include/*.h
//   ./build.sh --target=Pack      the NuGet package with the native runtime
using System.Text.RegularExpressions;
using System.Xml.Linq;

var target = Argument("target", "Default");
var configuration = Argument("configuration", "Release");
var root = MakeAbsolute(Directory("."));
var nativeDir = root.Combine("build/native");
var asanDir = root.Combine("build/native-asan");
var resultsDir = root.Combine("build/test-results");
var artifacts = root.Combine("artifacts");
var llmk = root.CombineWithFilePath($"managed/LlmKernels.Cli/bin/{configuration}/net10.0/llmk.dll");
// The CUDA library the managed tests load (LLMK_CUDA_LIBRARY, docs/cuda/managed.md). Unset, the tests choose
// llmkernels_cuda_emu, the CUDA sources over a CPU emulator; on a GPU host, --cuda-library=libllmkernels_cuda.so
// runs them on the GPU.
var cudaLibrary = Argument("cuda-library", "");
// The root CMake builds the emulator on x86-64 Linux (LK_CUDA_EMU); the test project copies it beside the tests.
var emulatorBuilds = IsRunningOnLinux() && System.Runtime.InteropServices.RuntimeInformation.OSArchitecture ==
                     System.Runtime.InteropServices.Architecture.X64;

void Run(string tool, string args, DirectoryPath workingDirectory = null, IDictionary<string, string> environment = null)
{
    Information($"> {tool} {args}");
    var settings = new ProcessSettings { Arguments = args, WorkingDirectory = workingDirectory ?? root };
    if (environment != null) settings.EnvironmentVariables = environment;
    int exit = StartProcess(tool, settings);
    if (exit != 0) throw new Exception($"'{tool} {args}' exited with {exit}");
}

void CMakeBuild(DirectoryPath dir, string buildType, string extra)
{
    Run("cmake", $"-S \"{root}\" -B \"{dir}\" -DCMAKE_BUILD_TYPE={buildType} {extra}");
    Run("cmake", $"--build \"{dir}\" --parallel {Environment.ProcessorCount}");
}

Task("Native")
    .Description("The CPU library, the CUDA emulator library the CUDA tests run on (x86-64 Linux), and the native tests (CMake, Release).")
    .Does(() =>
{
    CMakeBuild(nativeDir, "Release", emulatorBuilds ? "-DLK_CUDA_EMU=ON" : "");
    var emulator = nativeDir.CombineWithFilePath("lib/libllmkernels_cuda_emu.so");
    if (emulatorBuilds && !FileExists(emulator))
        throw new Exception($"{emulator} was not built: the managed CUDA tests run on it (native/cuda/emu)");
});

Task("NativeSanitized")
    .Description("The same under AddressSanitizer and UndefinedBehaviorSanitizer.")
    .Does(() => CMakeBuild(asanDir, "RelWithDebInfo", "-DLK_SANITIZE=ON"));

// The generator's libclang comes from NuGet's libclang.runtime.linux-x64: other hosts keep the
// committed bindings (CI on Linux checks them).
var canGenerateBindings = IsRunningOnLinux() && System.Runtime.InteropServices.RuntimeInformation.OSArchitecture ==
                          System.Runtime.InteropServices.Architecture.X64;

Task("Bindings")
    .Description("Regenerate bindings/generated from native/include/*.h.")
    .WithCriteria(canGenerateBindings, "libclang's NuGet runtime is linux-x64 only")
    .Does(() => Run("dotnet", "run --project bindings/LlmKernels.Bindings.Generator -c Release -- @bindings/generate.rsp"));

Task("VerifyBindings")
    .Description("Fail, naming the file, when the committed bindings differ from what the header generates.")
    .WithCriteria(canGenerateBindings, "libclang's NuGet runtime is linux-x64 only")
    .Does(() => Run("dotnet", "run --project bindings/LlmKernels.Bindings.Generator -c Release -- @bindings/generate.rsp --verify"));

Task("Build")
    .Description("Native library, managed library, CLI, tests and benchmarks.")
    .IsDependentOn("Native")
    .Does(() =>
{
    foreach (var project in new[] { "managed/LlmKernels.Cli", "tests/LlmKernels.Tests", "bench/LlmKernels.Bench" })
        Run("dotnet", $"build {project} -c {configuration} -nologo");
});

Task("Test")
    .Description("Native tests (Release and sanitized), bindings drift check, xunit; totals in build/test-summary.txt.")
    .IsDependentOn("Build")
    .IsDependentOn("NativeSanitized")
    .IsDependentOn("VerifyBindings")
    .Does(() =>
{
    EnsureDirectoryExists(resultsDir);
    CleanDirectory(resultsDir);
    var failures = new List<string>();
    void Try(string name, Action action)
    {
        try { action(); } catch (Exception e) { failures.Add($"{name}: {e.Message}"); }
    }
    Try("native", () => Run("ctest", $"--test-dir \"{nativeDir}\" --output-on-failure --output-junit \"{resultsDir}/native.xml\""));
    Try("native-asan", () => Run("ctest", $"--test-dir \"{asanDir}\" --output-on-failure --output-junit \"{resultsDir}/native-asan.xml\""));
    var managedEnvironment = cudaLibrary.Length > 0 ? new Dictionary<string, string> { ["LLMK_CUDA_LIBRARY"] = cudaLibrary } : null;
    Try("managed", () => Run("dotnet", $"test tests/LlmKernels.Tests -c {configuration} --no-build -nologo " +
                                      $"--logger \"trx;LogFileName=managed.trx\" --logger \"console;verbosity=normal\" --results-directory \"{resultsDir}\"",
                             environment: managedEnvironment));

    // One line of totals over native and managed tests, as CI reads it.
    int passed = 0, failed = 0, skipped = 0;
    foreach (var junit in GetFiles($"{resultsDir}/*.xml"))
    {
        var suite = XDocument.Load(junit.FullPath).Root;
        int tests = int.Parse(suite.Attribute("tests").Value), fails = int.Parse(suite.Attribute("failures")?.Value ?? "0"),
            errors = int.Parse(suite.Attribute("errors")?.Value ?? "0"), skips = int.Parse(suite.Attribute("skipped")?.Value ?? "0");
        passed += tests - fails - errors - skips; failed += fails + errors; skipped += skips;
    }
    foreach (var trx in GetFiles($"{resultsDir}/**/*.trx"))
    {
        var counters = XDocument.Load(trx.FullPath).Descendants().First(e => e.Name.LocalName == "Counters");
        int Count(string name) => int.Parse(counters.Attribute(name)?.Value ?? "0");
        passed += Count("passed"); failed += Count("failed") + Count("error") + Count("timeout") + Count("aborted");
        skipped += Count("notExecuted");
    }
    string totals = $"{passed} passed, {failed} failed" + (skipped > 0 ? $", {skipped} skipped" : "");
    System.IO.File.WriteAllText($"{root}/build/test-summary.txt", totals + "\n");
    Information(totals);
    if (failures.Count > 0)
        throw new Exception("Tests failed:\n  " + string.Join("\n  ", failures));
});

Task("Demo")
    .Description("llmk demo: a Llama-sized residual add + RMSNorm end to end.")
    .IsDependentOn("Build")
    .Does(() => Run("dotnet", $"\"{llmk}\" demo"));

Task("BenchQuick")
    .Description("llmk bench --quick: ceilings, kernels and peer ratios in about a minute; JSON in build/bench.json.")
    .IsDependentOn("Build")
    .Does(() => Run("dotnet", $"\"{llmk}\" bench --quick --json \"{root}/build/bench.json\""));

Task("Bench")
    .Description("The BenchmarkDotNet suites against every peer (long).")
    .IsDependentOn("Build")
    .Does(() => Run("dotnet", $"run --project bench/LlmKernels.Bench -c {configuration} --no-build -- --filter \"*\""));

Task("Pack")
    .Description("LlmKernels.nupkg with the native library under runtimes/<rid>/native.")
    .IsDependentOn("Build")
    .Does(() => Run("dotnet", $"pack managed/LlmKernels -c {configuration} -nologo -o \"{artifacts}\""));

Task("Default")
    .IsDependentOn("Demo")
    .IsDependentOn("BenchQuick");

RunTarget(target);
