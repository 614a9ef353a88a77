#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py says what it measures):
#   OUT=/some/dir bash benchmarks/gpu_check.sh                 # on a GPU machine with this repository
#   GPU_CHECK_DRY=1 OUT=/tmp/x bash benchmarks/gpu_check.sh    # the same code paths at tiny sizes on the CPU (CI)
#   ... bash benchmarks/gpu_check.sh --protocol-steps 100 --deadline 300   # arguments go to gpu_check.py
# Which fasbench runs:
#   GPU_CHECK_WHEELS=DIR  installs the wheels in DIR (benchmarks/gpu_check_wheels.sh makes them: fasbench and the
#                         dependencies a GPU image lacks) with no package index, into a folder of their own put first
#                         on PYTHONPATH: for a machine that reaches no index, such as the lent H200;
#   otherwise             the fasbench that $PYTHON imports, or, where none does, a virtual environment
#                         .gpu-check-venv installed from a package index.
# Writes $OUT/gpu_check.md and $OUT/gpu_check.json (after every section), keeps runs and frame caches in
# $GPU_CHECK_WORK (default: a new temporary folder) and fails loudly without CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder for gpu_check.md and gpu_check.json}
PYTHON=${PYTHON:-python3}
if [ -n "${GPU_CHECK_WHEELS:-}" ]; then
    wheels=("$GPU_CHECK_WHEELS"/*.whl)
    [ -e "${wheels[0]}" ] || { echo "gpu_check: no wheel in GPU_CHECK_WHEELS=$GPU_CHECK_WHEELS" >&2; exit 1; }
    SITE=${GPU_CHECK_SITE:-$(mktemp -d -t fasbench-site-XXXXXX)}
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "${wheels[@]}"
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
elif ! "$PYTHON" -c "import fasbench, fasbench_plugins" 2>/dev/null; then
    "$PYTHON" -m venv .gpu-check-venv
    .gpu-check-venv/bin/python -m pip install --quiet --upgrade pip
    .gpu-check-venv/bin/python -m pip install --quiet -e .
    PYTHON=.gpu-check-venv/bin/python
fi
case "$PYTHON" in */*) PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")" ;; esac
# from a neutral folder: `python -c` puts the working directory first on sys.path, and here that is the checkout
(cd / && "$PYTHON" -c "import fasbench.runs.config, fasbench_plugins.rfmeta") || {
    echo "gpu_check: fasbench does not import with $PYTHON (above: which module is missing); on a machine without" \
        "a package index, make the wheels here with benchmarks/gpu_check_wheels.sh and set GPU_CHECK_WHEELS" >&2
    exit 1
}
args=(--out "$OUT" "$@")
if [ -n "${GPU_CHECK_WORK:-}" ]; then
    args+=(--work "$GPU_CHECK_WORK")
fi
if [ -z "${GPU_CHECK_DRY:-}" ]; then
    "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" || {
        echo "gpu_check: CUDA is not available here (GPU_CHECK_DRY=1 runs the CPU dry mode)" >&2; exit 1; }
    exec "$PYTHON" benchmarks/gpu_check.py "${args[@]}"
fi
exec "$PYTHON" benchmarks/gpu_check.py "${args[@]}" --dry
