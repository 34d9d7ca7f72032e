#!/usr/bin/env bash
# Faces v2 (issue #15) on a GPU machine: teacher + distilled student (export/face_distill.py), selected on a
# dev split of the training file; the student checkpoint comes back and is exported here (PublicTest is read
# once, by face_export.py, on the development machine, where latency is measured too).
#
# A device call carries the whole working tree plus what it names, 64 MiB at most; the packed training
# file alone is ~47 MB, so it travels in parts staged on the (warm) machine by consecutive calls:
#   here:      bash export/face_gpu_run.sh prepare 2      # .facedata/part1, part2 (~24 MB each; git-ignored)
#   device 1:  carry [".facedata/part1"]   bash export/face_gpu_run.sh stage          (timeout_s 180)
#   device 2:  carry [".facedata/part2"]   bash export/face_gpu_run.sh run 7          (timeout_s 600)
#              at once after call 1 (the machine stays warm ~30 s; a fresh one has no staged part and
#              'run' says so). 7 = minutes for training in all: --deadline makes both stages finish by
#              then (LR schedules compressed if they would overrun). Extra face_distill.py arguments may
#              follow the minutes.
#   here:      python export/face_export.py --ckpt FILES_AT/student_best.pt [--logit-bias]   (the run prints
#              which, decided on the dev split), then `emoedge eval face --data
#              ../shared/data/faces/fer2013_val.npz --json`, `emoedge bench --only models`, and the e2e bench.
# On the GPU machine (no network; torch, cv2, cmake, pybind11 preinstalled) 'run' builds the native kernels
# in place (export/ imports emoedge from the source tree), trains, and leaves in $OUT: student_best.pt,
# distill.log, histories.json, env.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
DATA=${FACEDATA:-.facedata}
STAGE=${FACEDATA_STAGE:-/tmp/emoedge-facedata}
log() { echo "=== $(date -u +%H:%M:%S) $*"; }

stage_parts() {
  mkdir -p "$STAGE"
  for f in "$DATA"/part*/*; do
    if [ -f "$f" ]; then mv "$f" "$STAGE/"; fi
  done
}

case "${1:-}" in
prepare)
  N=${2:-2}
  SRC=${3:-../shared/data/faces}
  mkdir -p "$DATA"
  ex="$(git rev-parse --git-common-dir)/info/exclude"
  grep -qx "/$DATA/" "$ex" 2>/dev/null || echo "/$DATA/" >> "$ex"
  [ -f "$DATA/fer2013_train.npz" ] || $PY export/face_data.py pack "$SRC/fer2013_train.npz" "$DATA/fer2013_train.npz"
  rm -rf "$DATA"/part*
  size=$(stat -c %s "$DATA/fer2013_train.npz")
  chunk=$(( (size + N - 1) / N ))
  for k in $(seq 1 "$N"); do
    mkdir -p "$DATA/part$k"
    dd if="$DATA/fer2013_train.npz" of="$DATA/part$k/train.part$k" bs="$chunk" skip=$((k - 1)) count=1 status=none
  done
  printf '{"sha256": "%s", "parts": %d}\n' "$(sha256sum "$DATA/fer2013_train.npz" | cut -d' ' -f1)" "$N" \
    > "$DATA/part$N/train.sha256.json"
  du -b "$DATA"/part*/*
  echo "tracked files: $(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1) bytes (+ one part per call; 67108864 at most)"
  ;;
stage)
  stage_parts
  log "staged: $(ls "$STAGE" | tr '\n' ' ')"
  ;;
run)
  MIN=${2:-7}
  OUTD=${OUT:-runs/gpu_out}
  mkdir -p "$OUTD"
  # the deadline is taken first so the whole call stays inside its limit
  END=$(date -u -d "+$($PY -c "print(int(float('$MIN') * 60))") sec" +%H:%M)
  stage_parts
  [ -f "$STAGE/train.sha256.json" ] || { echo "train.sha256.json is not staged: carry the last part with this call"; exit 2; }
  want=$($PY -c "import json; d = json.load(open('$STAGE/train.sha256.json')); print(d['sha256'], d['parts'])")
  sum=${want% *}; parts=${want#* }
  have=$(find "$STAGE" -name 'train.part*' | wc -l)
  [ "$have" = "$parts" ] || { echo "staged $have of $parts parts ($(ls "$STAGE" | tr '\n' ' ')): the machine was probably replaced; stage them again"; exit 2; }
  find "$STAGE" -name 'train.part*' | sort -V | xargs cat > "$STAGE/fer2013_train.npz"
  echo "$sum  $STAGE/fer2013_train.npz" | sha256sum -c -
  NCPU=$(getconf _NPROCESSORS_ONLN)  # (nproc would honour the OMP_NUM_THREADS=1 below)
  export PYTHONUNBUFFERED=1 EMOEDGE_CACHE=/tmp/emoedge-cache OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    $PY -c 'import torch, cv2; print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "cv2", cv2.__version__)'
    echo "cpus $NCPU"; } > "$OUTD/env.txt" 2>&1
  cat "$OUTD/env.txt"
  log "build the native kernels in place (training deadline $END UTC)"
  cmake -S . -B /tmp/emoedge-build -DCMAKE_BUILD_TYPE=Release -DEMOEDGE_INPLACE=ON -DEMOEDGE_BUILD_TESTS=OFF \
    -DPython_EXECUTABLE="$(command -v "$PY")" -Dpybind11_DIR="$($PY -m pybind11 --cmakedir)" > /tmp/cmake.log 2>&1 \
    || { tail -30 /tmp/cmake.log; exit 3; }
  cmake --build /tmp/emoedge-build -j"$NCPU" > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 3; }
  export PYTHONPATH=$PWD
  $PY -c 'from emoedge import kernels; assert hasattr(kernels, "preprocess"); print("native preprocess kernel: ok")'
  RUN=/tmp/face_run
  log "teacher + distillation"
  set +e
  $PY export/face_distill.py --out "$RUN" --train "$STAGE/fer2013_train.npz" --device cuda --workers $((NCPU > 3 ? NCPU - 2 : 1)) --threads 2 \
      --deadline "$END" "${@:3}"
  rc=$?
  set -e
  cp "$RUN/distill.log" "$OUTD/" 2>/dev/null || true
  $PY -c "
import json, pathlib, sys
run = pathlib.Path('$RUN')
h = {k: json.loads((run / f'{k}_history.json').read_text()) for k in ('teacher', 'student') if (run / f'{k}_history.json').is_file()}
pathlib.Path('$OUTD/histories.json').write_text(json.dumps(h, indent=1))"
  [ "$rc" -eq 0 ] || { echo "face_distill.py failed (rc $rc)"; exit "$rc"; }
  cp "$RUN/student_best.pt" "$OUTD/"
  # logit biases: used when they raised dev macro-F1 without costing more than 0.2 point of dev accuracy
  # (decided on the dev split only; PublicTest is read once, by the export on the development machine)
  $PY -c "
import torch; m = torch.load('$RUN/student_best.pt', weights_only=False)['meta']
use = m['dev_bias_macro_f1'] > m['dev_macro_f1'] and m['dev_bias_acc'] >= m['dev_acc'] - 0.002
print('teacher dev acc %.4f, student dev acc %.4f macro-F1 %.4f; with dev logit biases %.4f / %.4f' % (m['teacher_dev_acc'], m['dev_acc'], m['dev_macro_f1'], m['dev_bias_acc'], m['dev_bias_macro_f1']))
print('next, on the development machine: python export/face_export.py --ckpt FILES_AT/student_best.pt' + (' --logit-bias' if use else ''))"
  log "done"; ls -la "$OUTD"
  ;;
*)
  echo "usage: bash export/face_gpu_run.sh prepare [PARTS [SRC_DIR]] | stage | run [MINUTES [face_distill.py args]]"; exit 2 ;;
esac
