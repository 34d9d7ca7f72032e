#!/usr/bin/env bash
# The GPU machine's side of the GPU proof (issue #19). It cannot download anything: the payload made by
# `python benchmarks/gpu_prepare.py` (onnxruntime-gpu 1.31.1 cp312 wheel 255.6 MB, soxr wheel, dev data, the
# decoded demo clip) travels in parts, one part per device call, because every call also carries the whole
# working tree and a call may carry 64 MiB at most. .gpu/PLAN.md lists the calls; make them back to back
# (the machine stays warm ~30 s after a call; a fresh machine has none of the staged parts).
#
#   bash benchmarks/gpu_device_run.sh stage N   # move .gpu/partNN/* to /tmp/emoedge-gpu (kept while warm)
#   bash benchmarks/gpu_device_run.sh check     # reassemble, verify sha256, install, build, run gpu_check
#
# check: onnxruntime-gpu and soxr are installed with --no-deps into /tmp/site, first on PYTHONPATH, so they
# shadow the machine's CPU onnxruntime; the machine's own nvidia-* packages (CUDA 13, cuDNN 9 for cu13, from
# its PyTorch) provide the CUDA libraries: /tmp/site/nvidia links to them so onnxruntime.preload_dlls() finds
# them, and LD_LIBRARY_PATH names them too. emoedge is built there with --no-build-isolation --no-deps.
# Results: $OUT/gpu_h200.json, $OUT/gpu_h200.md, $OUT/gpu_check.log (copy them into benchmarks/results/).
set -euo pipefail
cd "$(dirname "$0")/.."
STAGE=/tmp/emoedge-gpu
PY=${PYTHON:-python3}
mkdir -p "$STAGE"
log() { echo "=== $(date -u +%H:%M:%S) $*"; }

case "${1:-}" in
stage)
  n=$(printf %02d "$2")
  [ -f ".gpu/part$n/payload.part" ] || { echo "no .gpu/part$n/payload.part here: carry it with this call"; exit 2; }
  mv ".gpu/part$n/payload.part" "$STAGE/payload.part$n"
  [ -f ".gpu/part$n/payload.sha256" ] && mv ".gpu/part$n/payload.sha256" "$STAGE/payload.sha256"
  log "staged part $n; now: $(ls "$STAGE" | tr '\n' ' ') ($(du -sm "$STAGE" | cut -f1) MB)"
  ;;
check)
  [ -f "$STAGE/payload.sha256" ] || { echo "the last part (with payload.sha256) is not staged"; exit 2; }
  want=$($PY -c "import json; d=json.load(open('$STAGE/payload.sha256')); print(d['sha256'], d['parts'])")
  sum=${want% *}; parts=${want#* }
  have=$(ls "$STAGE"/payload.part* | wc -l)
  [ "$have" = "$parts" ] || { echo "staged $have of $parts parts: the machine was probably replaced; start again at part 1"; exit 2; }
  cat "$STAGE"/payload.part* > "$STAGE/payload.tar"
  echo "$sum  $STAGE/payload.tar" | sha256sum -c -
  rm -f "$STAGE"/payload.part*
  tar -xf "$STAGE/payload.tar" -C "$STAGE" && rm -f "$STAGE/payload.tar"
  log "install wheels into /tmp/site (no deps: the machine has numpy, protobuf, flatbuffers, packaging, cv2, numba)"
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$STAGE"/wheels/*.whl
  SITE=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  [ -e /tmp/site/nvidia ] || ln -s "$SITE/nvidia" /tmp/site/nvidia
  LIBS=$(find "$SITE/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | tr '\n' ':')
  export PYTHONPATH=/tmp/site LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:-}" PYTHONUNBUFFERED=1
  export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
  log "onnxruntime: $($PY -c 'import onnxruntime as o; print(o.__version__, o.__file__, o.get_available_providers())')"
  ldd /tmp/site/onnxruntime/capi/libonnxruntime_providers_cuda.so | grep -i "not found" || true
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  log "build emoedge (C++ kernels) against the machine's pybind11 / scikit-build-core"
  $PY -m pip install -q --no-build-isolation --no-deps --no-index . 2>&1 | tail -3
  out=${OUT:-benchmarks/results}
  log "gpu_check"
  set +e
  (cd /tmp && $PY "$OLDPWD/benchmarks/gpu_check.py" --preload-dlls --data "$STAGE/data" \
     --demo-bundle "$STAGE/demo_bundle.npz" --out "$out/gpu_h200.json" "${@:2}") 2>&1 | tee "$out/gpu_check.log"
  rc=${PIPESTATUS[0]}
  set -e
  ls -la "$out"
  exit "$rc"
  ;;
*)
  echo "usage: $0 stage N | check [gpu_check options]"; exit 2 ;;
esac
