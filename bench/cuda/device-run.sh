#!/usr/bin/env bash
# The GPU machine's one call (docs/cuda.md, "On a GPU"): builds everything with that machine's own
# toolkit for sm_90a, runs every CUDA test (the kernels against the CPU reference, and the PTX
# self-test that ties the emulator to the hardware), the CUDA benchmark and PyTorch's peers on the
# same shapes, then the CPU tests on its AVX-512 host, and prints the table last. Needs no network
# and no .NET SDK. Logs and JSON go to $OUT (the device tool brings them back).
#
#   bench/cuda/device-run.sh [--quick]
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-/tmp/lk-device}
mkdir -p "$out"
quick=${1:-}
jobs=$(nproc)
build=/tmp/lk-device-build

nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem,driver_version --format=csv | tee "$out/gpu.txt"
nvcc --version | tail -n 2
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($(grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' '))"

generator=""
command -v ninja >/dev/null && generator="-G Ninja"
if ! cmake -S . -B "$build" $generator -DCMAKE_BUILD_TYPE=Release -DLK_CUDA_ARCHITECTURES=OFF \
     -DCMAKE_CUDA_FLAGS="-gencode=arch=compute_90a,code=sm_90a" -DLK_CUDA_EMU=OFF -DLK_CUDA_PTXAS_REPORT=ON \
     > "$out/configure.log" 2>&1; then
  tail -n 40 "$out/configure.log"; echo "device-run: configure FAILED"; exit 1
fi
start=$(date +%s)
if ! cmake --build "$build" --parallel "$jobs" > "$out/build.log" 2>&1; then
  grep -E 'error' -A3 "$out/build.log" | head -n 60; echo "device-run: build FAILED"; exit 1
fi
echo "device-run: built in $(( $(date +%s) - start )) s; spills: $(grep -c 'bytes spill stores' "$out/build.log") reports, nonzero: $(grep -E '[1-9][0-9]* bytes spill stores' "$out/build.log" | wc -l)"

ctest --test-dir "$build" -L cuda --output-on-failure --timeout 300 > "$out/cuda-tests.log" 2>&1
cuda_status=$?
grep -hE 'checks passed|SKIP|FAILED' "$out/cuda-tests.log" | head -n 40
tail -n 3 "$out/cuda-tests.log"

"$build/lib/lk_cuda_bench" ${quick:+--quick} --json "$out/lk.json" 2>&1 | tee "$out/bench.txt"
bench_status=${PIPESTATUS[0]}
PYTHONUNBUFFERED=1 python3 bench/cuda/torch_peers.py ${quick:+--quick} --json "$out/torch.json" 2>&1 | tee "$out/torch.txt" | tail -n 4

ctest --test-dir "$build" -L native -E 'cuda' -j "$jobs" --timeout 300 > "$out/cpu-tests.log" 2>&1
cpu_status=$?
echo "device-run: CPU tests on this host: $(tail -n 12 "$out/cpu-tests.log" | grep -E 'tests passed|tests failed')"

echo "device-run: cuda tests $cuda_status, bench $bench_status, cpu tests $cpu_status"
python3 bench/cuda/report.py "$out/lk.json" "$out/torch.json" --markdown "$out/table.md"
