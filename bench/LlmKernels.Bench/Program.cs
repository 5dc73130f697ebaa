using BenchmarkDotNet.Running;
using LlmKernels.Bench;

// dotnet run -c Release --project bench/LlmKernels.Bench -- --filter '*RmsNorm*'   (or *LayerNorm*, *SwiGlu*, *Rope*, *Attention*, *Moe*)
// CI smoke: add `--job dry` (one invocation each) or `--job short` (3 iterations).
// LLMK_BENCH_THREADS=N sets the thread count of LlmKernels, ggml and ONNX Runtime (default: all cores).
BenchmarkSwitcher.FromAssembly(typeof(PeerSuite).Assembly).Run(args, BenchConfig.Create());
