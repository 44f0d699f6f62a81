#!/usr/bin/env bash
# What a lent GPU owes, in one command (bench/RESULTS.md): the machine and library versions, the
# CUDA tests on the device, then bench/bench_cuda.py. Logs and the benchmark JSON go to $1
# (default gpu-out/); make the report elsewhere with `python -m bench.report <dir>/cuda.json`.
# Run from the repository root. TEST_TIMEOUT / BENCH_TIMEOUT (seconds) bound each half.
set -u
out=${1:-gpu-out}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  $py -c "import sys, numba, numpy, llvmlite; print(sys.version.split()[0], 'numba', numba.__version__, 'numpy', numpy.__version__, 'llvmlite', llvmlite.__version__)"
  $py -m pip list 2>/dev/null | grep -i -E "^(numba|torch |jax|cuda-|nvidia-cuda-nvrtc)"
  nproc
} > "$out/env.txt" 2>&1
cat "$out/env.txt"
echo "== CUDA tests on the device"
JITGRAD_TEST_CUDA=gpu timeout "${TEST_TIMEOUT:-300}" $py -m pytest -q -p no:cacheprovider \
    -m cuda tests --maxfail=40 2>&1 | tee "$out/tests.log" | tail -n 60
[ "${SKIP_BENCH:-0}" = 1 ] && exit 0
echo "== bench/bench_cuda.py"
timeout "${BENCH_TIMEOUT:-240}" $py -m pytest bench/bench_cuda.py -p no:cacheprovider \
    --benchmark-json="$out/cuda.json" 2>&1 | tee "$out/bench.log" | tail -n 60
