"""The voice recipe search of one GPU session: actor-grouped 5-fold CV of several recipes (3 seeds each, so
the CV measures the shipped ensemble), their final fits on every speaker, and a distilled student, run as
concurrent export/voice_group.py processes under a time budget. Then the CV summary, and the results
packed for the trip back (at most 8 files of 16 MB).

    python export/voice_gpu_job.py --out runs/gpu --budget-s 420 --pack $OUT

Every recipe is scored only by its out-of-fold accuracy; the choice among them is made afterwards on that
CV (export/voice_cv.py summary), never on a reported split. Tasks that did not finish inside the budget are
listed as such in job.json (their recipe then has fewer folds and is not eligible).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "export"))

EPOCHS = 200
STUDENT_SEEDS = "5,6,7"
#: name -> (voice_group.py options, seeds); KD200's teacher is T200's group of the same fold
RECIPES = {
    "T200": ([f"--epochs={EPOCHS}", "--widths=64,96,192,384"], "1,2"),
    "A200": ([f"--epochs={EPOCHS}"], STUDENT_SEEDS),
    "B200": ([f"--epochs={EPOCHS}", "--pool=stats", "--mask=1", "--short-p=0.3"], STUDENT_SEEDS),
    "KD200": ([f"--epochs={EPOCHS}", "--kd-alpha=0.5", "--kd-t=2"], STUDENT_SEEDS),
    # five narrower members (0.84 M parameters, about 3/4 of A200's multiply-adds) with B200's short-utterance options
    "N200": ([f"--epochs={EPOCHS}", "--widths=16,24,48,96", "--pool=stats", "--mask=1", "--short-p=0.3"], "5,6,7,8,9"),
}
FOLDS = (0, 1, 2, 3, 4, -1)
STUDENTS = ("A200", "B200", "KD200", "N200")
#: the first session (2026-12-04): every recipe, every fold; "-1" is the final fit on every speaker
PLAN_ALL = [(r, f) for r in ("T200", "A200", "B200", "KD200") for f in FOLDS]
#: the second session: A200's folds again (its fold checkpoints feed the fusion evaluation), B200 complete,
#: N200 new
PLAN_2 = [(r, f) for r in ("A200", "B200", "N200") for f in FOLDS if (r, f) != ("A200", -1)]
PLANS = {"all": PLAN_ALL, "second": PLAN_2}


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def task_dir(out: pathlib.Path, recipe: str, fold: int) -> pathlib.Path:
    return out / recipe / ("final" if fold == -1 else f"fold{fold}")


def run(args) -> dict:
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    # one process fills the feature caches (log-mel of every clip and of its 0.9x/1.1x speed variants)
    subprocess.check_call([sys.executable, "-c", (
        "import sys; sys.path.insert(0, 'export'); import voice_data as vd; from emoedge import kernels; "
        "o = kernels.LogMelOptions(); c, _ = vd.load_clips(o); vd.speed_variants(c, o, (0.9, 1.1))")], cwd=ROOT)
    log(f"feature caches ready in {time.time() - t0:.0f}s")
    pending = list(PLANS[args.plan])
    running, status = {}, {}
    deadline = t0 + args.budget_s
    while pending or running:
        for key, (p, fh, ts) in list(running.items()):
            if p.poll() is not None:
                fh.close()
                status[key] = {"rc": p.returncode, "seconds": round(time.time() - ts, 1)}
                log(f"{key} finished rc={p.returncode} in {status[key]['seconds']}s")
                del running[key]
        if time.time() > deadline:
            for key, (p, fh, ts) in running.items():
                p.kill()
                fh.close()
                status[key] = {"rc": "killed at the budget", "seconds": round(time.time() - ts, 1)}
                log(f"{key} killed at the budget")
            running.clear()
            for key in pending:
                status[key] = {"rc": "not started (budget)"}
            pending = []
            break
        for key in list(pending):
            if len(running) >= args.workers:
                break
            r, f = key
            if r == "KD200":
                t = status.get(("T200", f))
                if t is None:
                    continue                      # its teacher is still training
                if t["rc"] != 0:
                    status[key] = {"rc": "teacher failed"}
                    pending.remove(key)
                    continue
            opts, seeds = RECIPES[r]
            d = task_dir(out, r, f)
            d.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "export/voice_group.py", "--fold", str(f), "--seeds", seeds, "--out", str(d), *opts]
            if r == "KD200":
                cmd += ["--teacher", str(task_dir(out, "T200", f))]
            fh = open(d / "train.log", "w")
            running[key] = (subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                             env={**os.environ, "OMP_NUM_THREADS": "1"}), fh, time.time())
            pending.remove(key)
            log("started", r, f, " ".join(cmd[1:]))
        time.sleep(2)
    job = {"recipes": {r: {"options": o, "seeds": s} for r, (o, s) in RECIPES.items()},
           "tasks": {f"{r}/{f}": v for (r, f), v in status.items()}, "seconds": round(time.time() - t0, 1),
           "budget_s": args.budget_s, "workers": args.workers}
    try:
        import torch
        job["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception as e:  # the summary must still be written
        job["device"] = f"unknown ({e})"
    job["cv"] = summary(out)
    (out / "job.json").write_text(json.dumps(job, indent=1))
    return job


def summary(out: pathlib.Path) -> dict:
    """Per recipe with a finished fold: export/voice_cv.py's CV summary (out-of-fold accuracy per fold, mean,
    std) over the folds that finished."""
    import voice_cv
    res = {}
    for r in RECIPES:
        d = out / r
        done = voice_cv.folds_done(d) if (d / "fold0").exists() else []
        if not done:
            continue
        res[r] = voice_cv.summarize(d, write=False, folds=done)
        log(f"{r}: folds {done} RAVDESS {res[r]['ravdess_full']['mean']:.4f} EmoDB {res[r]['emodb_full']['mean']:.4f} "
            f"RAVDESS 1 s {res[r]['ravdess_crop1s']['mean']:.4f}")
    return res


def _half_checkpoint(path: pathlib.Path) -> bytes:
    """A fold checkpoint with its float tensors stored as float16 (half the bytes back; load_state_dict casts them
    back to float32, and fold checkpoints only score out-of-fold clips)."""
    import torch
    ck = torch.load(path, map_location="cpu", weights_only=False)
    # weights only: the normalisation buffers and BatchNorm statistics are small and stay exact
    keep = ("mean", "std", "running_")
    ck["state_dict"] = {k: (v.half() if v.is_floating_point() and not any(w in k for w in keep) else v)
                        for k, v in ck["state_dict"].items()}
    ck["stored_as"] = "float16"
    b = io.BytesIO()
    torch.save(ck, b)
    return b.getvalue()


def pack(out: pathlib.Path, dest: pathlib.Path, job: dict, part_mb: float = 15.0) -> None:
    """Everything small, all final-fit students (float32), and the fold checkpoints (float16) of every complete
    student recipe, as results.tar.xz split into part files (the device returns at most 8 files, 64 MiB)."""
    cv = job.get("cv", {})
    complete = [r for r in STUDENTS if cv.get(r, {}).get("folds_scored") == [0, 1, 2, 3, 4]]
    job["packed_fold_checkpoints"] = complete
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz", preset=1) as tar:
        for p in sorted(out.rglob("*")):
            if not p.is_file():
                continue
            rel = p.relative_to(out)
            if p.name == "voice_cnn.pt":
                recipe, where = rel.parts[0], rel.parts[1]
                if recipe == "T200" or (where != "final" and recipe not in complete):
                    continue
                if where != "final":
                    data = _half_checkpoint(p)
                    ti = tarfile.TarInfo(str(rel))
                    ti.size = len(data)
                    tar.addfile(ti, io.BytesIO(data))
                    continue
            tar.add(p, arcname=str(rel))
        data = json.dumps(job, indent=1).encode()
        ti = tarfile.TarInfo("job.json")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    blob = buf.getvalue()
    dest.mkdir(parents=True, exist_ok=True)
    step = int(part_mb * 1e6)
    n = 0
    for i in range(0, len(blob), step):
        (dest / f"results.tar.xz.{n}").write_bytes(blob[i:i + step])
        n += 1
    log(f"packed {len(blob) / 1e6:.1f} MB into {n} parts under {dest} (fold checkpoints of {complete})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "runs" / "gpu"))
    ap.add_argument("--budget-s", type=float, default=420.0, help="training budget from the start (seconds)")
    ap.add_argument("--workers", type=int, default=18)
    ap.add_argument("--plan", default="second", choices=sorted(PLANS), help="which (recipe, fold) tasks to run")
    ap.add_argument("--pack", default=None, help="folder for the packed results (the device's $OUT)")
    args = ap.parse_args(argv)
    try:
        job = run(args)
    finally:
        if args.pack:
            jf = pathlib.Path(args.out) / "job.json"
            job = json.loads(jf.read_text()) if jf.is_file() else {"error": "job did not finish"}
            if "cv" not in job:
                job["cv"] = summary(pathlib.Path(args.out))
            pack(pathlib.Path(args.out), pathlib.Path(args.pack), job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
