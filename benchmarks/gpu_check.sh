#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py says what it measures):
#   OUT=/some/dir bash benchmarks/gpu_check.sh          # on a GPU machine with only this repository
#   GPU_CHECK_DRY=1 OUT=/tmp/x bash benchmarks/gpu_check.sh   # the same code paths at tiny sizes on the CPU (CI)
# Installs the project into .gpu-check-venv unless fasbench is importable already (GPU_CHECK_REUSE=1 to insist
# on the current Python), then writes $OUT/gpu_check.md and $OUT/gpu_check.json. Fails loudly without CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder for gpu_check.md and gpu_check.json}
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c "import fasbench, fasbench_plugins" 2>/dev/null; then
    "$PYTHON" -m venv .gpu-check-venv
    .gpu-check-venv/bin/python -m pip install --quiet --upgrade pip
    .gpu-check-venv/bin/python -m pip install --quiet -e .
    PYTHON=.gpu-check-venv/bin/python
fi
if [ -z "${GPU_CHECK_DRY:-}" ]; then
    "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" || {
        echo "gpu_check: CUDA is not available here (GPU_CHECK_DRY=1 runs the CPU dry mode)" >&2; exit 1; }
    exec "$PYTHON" benchmarks/gpu_check.py --out "$OUT"
fi
exec "$PYTHON" benchmarks/gpu_check.py --out "$OUT" --dry
