#!/usr/bin/env bash
# The voice GPU session (device tool; see README "Voice"), three back-to-back calls from the repository root:
#   python export/voice_gpu_data.py pack .gpu/voice        # here, once: 3 part files of the speech corpora
#   call 1: carry .gpu/voice/index.json .gpu/voice/part0;  bash export/voice_gpu_run.sh stage
#   call 2: carry .gpu/voice/part1;                        bash export/voice_gpu_run.sh stage
#   call 3: carry .gpu/voice/part2;                        bash export/voice_gpu_run.sh run 400
# "stage" builds the native extension in place (once) and checks CUDA (and whether MPS can start);
# "run BUDGET_S" unpacks the corpora, then export/voice_gpu_job.py trains for BUDGET_S seconds and packs
# results.tar.xz.* into $OUT. Here: cat results.tar.xz.* | tar -xJ -C runs/gpu
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
PY=${PY:-python3}
if ! ls emoedge/_native*.so >/dev/null 2>&1; then
  t0=$(date +%s)
  cmake -S . -B build/dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DEMOEDGE_INPLACE=ON \
    -DPython_EXECUTABLE="$(command -v $PY)" -Dpybind11_DIR="$($PY -m pybind11 --cmakedir)" >build-dev.log 2>&1 \
    && cmake --build build/dev -j16 >>build-dev.log 2>&1 || { tail -30 build-dev.log; exit 1; }
  echo "native build $(( $(date +%s) - t0 ))s"
fi
$PY -c "import emoedge._native, torch; print('emoedge native ok; torch', torch.__version__, torch.cuda.get_device_name(0))" || exit 1
case "${1:-stage}" in
  stage)
    ls -la .gpu/voice
    if [ ! -f .gpu/mps_checked ] && command -v nvidia-cuda-mps-control >/dev/null; then
      # MPS lets the concurrent training processes' small kernels share the GPU instead of time-slicing
      (nvidia-cuda-mps-control -d && timeout 60 $PY -c "import torch; x=torch.ones(4, device='cuda'); print('mps client ok', float(x.sum()))" \
        && echo ok > .gpu/mps_ok) || { echo "MPS unusable"; echo quit | nvidia-cuda-mps-control; }
      touch .gpu/mps_checked
    fi
    ;;
  run)
    budget=${2:-400}; mkdir -p runs
    if ls .whl/*.whl >/dev/null 2>&1; then $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site; fi
    $PY export/voice_gpu_data.py unpack .gpu/voice /tmp/shared || exit 1
    export EMOEDGE_SHARED=/tmp/shared
    nvidia-smi -L
    if [ -f .gpu/mps_ok ]; then pgrep -f nvidia-cuda-mps >/dev/null || nvidia-cuda-mps-control -d; echo "MPS on"; fi
    $PY export/voice_gpu_job.py --out runs/gpu --budget-s "$budget" --workers 16 --pack "${OUT:-runs/gpu-pack}" \
      2>&1 | tee runs/gpu-job.log
    cp runs/gpu-job.log "${OUT:-runs/gpu-pack}/job.log" 2>/dev/null
    ;;
esac
