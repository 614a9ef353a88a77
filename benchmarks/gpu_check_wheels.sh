#!/usr/bin/env bash
# The wheels a GPU machine without a package index needs to run benchmarks/gpu_check.sh: fasbench itself and the
# pure-Python dependencies its image lacks. Run it where PyPI is reachable, then take the folder along:
#   bash benchmarks/gpu_check_wheels.sh                 # -> .whl/ (add /.whl/ to .git/info/exclude)
#   there: GPU_CHECK_WHEELS=.whl OUT=... bash benchmarks/gpu_check.sh
# The GPU image (PyTorch's, as the lent H200s have it) holds torch, torchvision, timm, numpy, h5py, xxhash, pillow,
# rich, pluggy, pyyaml, matplotlib, tensorboard, opencv and typing_extensions; it lacks mmengine (run configs) and
# what mmengine imports beyond those (addict, termcolor, yapf, platformdirs), and submitit (the slurm launcher,
# imported only there). The versions are the ones fasbench's CI installs today; the wheels are pure Python. For a
# Python 3.11 or later on the GPU machine (the image's is 3.12): under 3.10 yapf also needs tomli.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${GPU_CHECK_WHEELS:-.whl}
PYTHON=${PYTHON:-python3}
MISSING=(mmengine==0.10.7 addict==2.4.0 termcolor==3.3.0 yapf==0.43.0 platformdirs==4.14.9 submitit==1.5.4)
rm -rf "$DIR" build  # build/: setuptools' staging folder, which could carry deleted modules into the wheel
mkdir -p "$DIR"
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$DIR" .
rm -rf build
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$DIR" "${MISSING[@]}"
for wheel in "$DIR"/*.whl; do
    case "$wheel" in
        *-none-any.whl) ;;
        *) echo "gpu_check_wheels: $wheel is not pure Python: it may not install on the GPU machine" >&2; exit 1 ;;
    esac
done
du -sh "$DIR"
ls "$DIR"
