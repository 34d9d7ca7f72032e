"""Teacher training and knowledge distillation for the face-expression model (torch; export/ only).

    python export/face_distill.py --out RUN --device auto --workers 12 --deadline 16:40

Stages (``--stage all`` runs both; each resumes from its own ``*_last.pt`` with ``--resume``):

1. **teacher**: a ResNet-18-style network (export/face_model.py TeacherResNet; ``--teacher-size`` up-samples
   the 48 px batch on the device) trained on FER+ vote distributions mixed with the original labels
   (``--ferplus-weight``), with the kernel-based augmentation of export/face_data.py (random flip, rotation,
   zoom/crop, shift, contrast, erasing) plus mixup or cutmix per batch (``--mix-prob``).
2. **student**: the shipped FaceNet architecture (or ``--student-widths/--student-blocks``) distilled from
   the frozen teacher: ``kd_alpha * T^2 * KL(teacher/T || student/T) + (1 - kd_alpha) * CE(student, target)``
   on the same augmented (and mixed) batches, the teacher labelling each mixed image itself.

Selection is on a **development split of the training file** (``--dev-frac``, stratified by label, exact
duplicate images kept on one side), never on PublicTest: each stage keeps the epoch with the best dev
accuracy (of the EMA weights when ``--ema`` > 0). At the end the student's temperature and per-class logit
biases (maximising dev macro-F1, export/face_tta.py) are fitted on the dev split and stored in
``student_best.pt``; PublicTest is touched only by the next step,
``python export/face_export.py --ckpt RUN/student_best.pt [--logit-bias]``, which reports it once.

``--deadline HH:MM`` (UTC wall clock) bounds the whole run: the teacher gets ``--teacher-share`` of the
time left, the student the rest, and each stage's LR schedule is compressed to end in its slot when it
would overrun (logged). ``--smoke``: both stages, 1 epoch of a few steps on a few hundred images.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see face_train.py

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import face_data
from face_model import FaceNet, TeacherResNet, count_flops, count_params
from face_train import (ema_update, evaluate, lr_at, make_ema, optimizer_step, param_groups, restore_training,
                        setup_device, soft_ce, step_batches)


def _ints(s: str) -> tuple:
    return tuple(int(v) for v in s.split(","))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output directory (checkpoints, histories, log lines)")
    p.add_argument("--train", default=str(face_data.FACES / "fer2013_train.npz"))
    p.add_argument("--stage", choices=("all", "teacher", "student"), default="all")
    p.add_argument("--dev-frac", type=float, default=0.1, help="fraction of the training file held out for selection")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--teacher-epochs", type=int, default=60)
    p.add_argument("--teacher-lr", type=float, default=2e-3)
    p.add_argument("--teacher-widths", type=_ints, default=(64, 128, 256, 512))
    p.add_argument("--teacher-blocks", type=_ints, default=(2, 2, 2, 2))
    p.add_argument("--teacher-size", type=int, default=48, help="input side the teacher sees (batch up-sampled on the device)")
    p.add_argument("--teacher-ckpt", default="", help="use this trained teacher (skips the teacher stage)")
    p.add_argument("--student-epochs", type=int, default=80)
    p.add_argument("--student-lr", type=float, default=2e-3)
    p.add_argument("--student-widths", type=_ints, default=(32, 40, 80, 144))
    p.add_argument("--student-blocks", type=_ints, default=(1, 2, 2))
    p.add_argument("--student-init", default="", help="start the student from this checkpoint's weights")
    p.add_argument("--wd", type=float, default=0.05)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--ferplus-weight", type=float, default=0.5, help="weight of the FER+ vote distribution in the target")
    p.add_argument("--mix-prob", type=float, default=0.5, help="probability that a batch is mixed (mixup or cutmix, 50/50)")
    p.add_argument("--mixup-alpha", type=float, default=0.2)
    p.add_argument("--cutmix-alpha", type=float, default=1.0)
    p.add_argument("--kd-T", type=float, default=4.0, help="distillation temperature")
    p.add_argument("--kd-alpha", type=float, default=0.7, help="weight of the distillation term")
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay per step of the evaluated weights (0: off)")
    p.add_argument("--teacher-share", type=float, default=0.55, help="share of the --deadline time for the teacher")
    p.add_argument("--deadline", default="", help="HH:MM UTC: the whole run ends by then (schedules compressed)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--amp", choices=("auto", "off", "bf16"), default="auto", help="bf16 autocast (auto: on cuda)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=0, help="augmentation worker processes")
    p.add_argument("--limit-train", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--time-steps", type=int, default=0, help="only time N training steps of the teacher, the "
                   "student (distilled) and the augmentation at --batch, print per-epoch estimates, and exit")
    p.add_argument("--smoke", action="store_true", help="1 epoch x 2 steps per stage on 320 images (CPU, seconds)")
    return p


def deadline_ts(s: str):
    """'HH:MM' UTC today -> epoch seconds (None when empty)."""
    if not s:
        return None
    import datetime
    hh, mm = (int(v) for v in s.split(":"))
    now = datetime.datetime.now(datetime.timezone.utc)
    d = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if d <= now:
        raise SystemExit(f"--deadline {s} (UTC) is in the past")
    return d.timestamp()


def mix_batch(xb, tb, rng: np.random.Generator, args):
    """Mixup or cutmix (or nothing) on a device batch; returns (x, target, kind)."""
    import torch
    if args.mix_prob <= 0 or rng.random() >= args.mix_prob:
        return xb, tb, "none"
    pi = torch.from_numpy(rng.permutation(len(xb))).to(xb.device)
    if rng.random() < 0.5:
        lam = float(rng.beta(args.mixup_alpha, args.mixup_alpha))
        return lam * xb + (1 - lam) * xb[pi], lam * tb + (1 - lam) * tb[pi], "mixup"
    lam = float(rng.beta(args.cutmix_alpha, args.cutmix_alpha))
    h, w = xb.shape[-2:]
    ch, cw = int(round(h * np.sqrt(1 - lam))), int(round(w * np.sqrt(1 - lam)))
    cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
    y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
    xb = xb.clone()
    xb[..., y0:y1, x0:x1] = xb[pi][..., y0:y1, x0:x1]
    lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually kept
    return xb, lam * tb + (1 - lam) * tb[pi], "cutmix"


class _Resize:
    """Wraps a model so it sees its input up-sampled to ``size`` (bilinear), e.g. a 96 px teacher."""

    def __new__(cls, model, size: int):
        import torch

        class Up(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = model

            def forward(self, x):
                if x.shape[-1] != size:
                    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
                return self.net(x)
        return Up()


def make_teacher(args):
    stride = 1 if args.teacher_size <= 64 else 2
    net = TeacherResNet(len(face_data.LABELS), args.teacher_widths, args.teacher_blocks, args.dropout, stem_stride=stride)
    return _Resize(net, args.teacher_size)


def make_student(args, widths=None, blocks=None, dropout=None):
    return FaceNet(len(face_data.LABELS), widths or args.student_widths, blocks or args.student_blocks,
                   args.dropout if dropout is None else dropout)


def train_stage(kind: str, model, data: dict, args, device, slot_end, log, teacher=None) -> dict:
    """Train ``model`` (teacher, or student distilled from ``teacher``) with per-epoch dev evaluation,
    EMA, checkpoints (``OUT/{kind}_last.pt`` every epoch, ``OUT/{kind}_best.pt`` on a better dev accuracy)
    and the one-cycle LR compressed to end by ``slot_end`` (epoch seconds or None). Returns the best record."""
    import torch
    out = pathlib.Path(args.out)
    epochs = args.teacher_epochs if kind == "teacher" else args.student_epochs
    peak = args.teacher_lr if kind == "teacher" else args.student_lr
    x_img, t_fit, x_dev, y_dev = data["x_img"], data["t_fit"], data["x_dev"], data["y_dev"]
    model = model.to(device).to(memory_format=torch.channels_last)
    ema = make_ema(model, args.ema)
    opt = torch.optim.AdamW(param_groups(model, args.wd), lr=peak)
    amp = args.amp == "bf16" or (args.amp == "auto" and device.type == "cuda")
    steps_per_epoch = len(x_img) // args.batch
    if args.max_steps:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    total = max(steps_per_epoch * epochs, 1)
    start_epoch, step_count, history, best = 0, 0, [], {"dev_acc": -1.0, "epoch": 0}
    last = out / f"{kind}_last.pt"
    if args.resume and last.is_file():
        st = torch.load(last, map_location="cpu", weights_only=False)
        restore_training(st, model, opt, ema)
        start_epoch, step_count, history, best = st["epoch"] + 1, st["step_count"], st["history"], st["best"]
        log(f"{kind}: resumed at epoch {start_epoch + 1}")
    if start_epoch >= epochs:
        return best
    t_start, p0 = time.time(), step_count / total
    compressed = False
    cpu_sd = lambda m: {k: v.detach().cpu() for k, v in m.state_dict().items()}
    T = args.kd_T
    for epoch in range(start_epoch, epochs):
        te = time.time()
        model.train()
        perm = np.random.default_rng([args.seed, epoch, 11 if kind == "teacher" else 12]).permutation(len(x_img))
        seed = args.seed * 1000 + (1 if kind == "teacher" else 2)
        batches = step_batches(x_img, perm, args.batch, steps_per_epoch, seed, epoch, args.workers,
                               pin=device.type == "cuda")
        tot, seen, done = 0.0, 0, False
        for step in range(steps_per_epoch):
            xb, idx = next(batches)
            xb = xb.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            tb = torch.from_numpy(t_fit[idx.numpy()]).to(device, non_blocking=True)
            xb, tb, _ = mix_batch(xb, tb, np.random.default_rng([seed, epoch, step, 5]), args)
            prog = step_count / total
            if slot_end is not None:
                pt = p0 + (1 - p0) * (time.time() - t_start) / max(slot_end - t_start, 1.0)
                compressed = compressed or pt > prog + 0.01  # behind by more than 1% of the schedule
                prog = max(prog, pt)
            lr = lr_at(prog, peak)
            for g in opt.param_groups:
                g["lr"] = lr
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(xb)
                if teacher is not None:
                    with torch.no_grad():
                        tl = teacher(xb)
            logits = logits.float()
            loss = soft_ce(logits, tb)
            if teacher is not None:
                kd = torch.nn.functional.kl_div(torch.log_softmax(logits / T, 1), torch.softmax(tl.float() / T, 1),
                                                reduction="batchmean") * T * T
                loss = args.kd_alpha * kd + (1 - args.kd_alpha) * loss
            optimizer_step(opt, loss)
            step_count += 1
            ema_update(ema, model, args.ema, step_count)
            tot += float(loss.detach()) * len(idx)
            seen += len(idx)
            if prog >= 1.0:
                done = True
                break
        em = ema if ema is not None else model
        acc, nll, logits_dev = evaluate(em, x_dev, y_dev, device=device)
        from emoedge.evaluation.metrics import classification_report
        f1 = classification_report(y_dev, logits_dev.argmax(1), list(face_data.LABELS))["macro_f1"]
        rec = {"epoch": epoch + 1, "train_loss": tot / max(seen, 1), "dev_acc": acc, "dev_macro_f1": f1, "dev_nll": nll,
               "lr": lr, "steps": step_count, "seconds": time.time() - te, "schedule_compressed": compressed}
        history.append(rec)
        improved = acc > best["dev_acc"]
        if improved:
            best = {"dev_acc": acc, "dev_macro_f1": f1, "epoch": epoch + 1}
            torch.save({"model": cpu_sd(em), "epoch": epoch + 1, "dev_acc": acc}, out / f"{kind}_best.tmp")
            os.replace(out / f"{kind}_best.tmp", out / f"{kind}_best.pt")
        log(f"{kind} epoch {epoch + 1}/{epochs} loss {rec['train_loss']:.4f} dev acc {acc:.4f} F1 {f1:.4f} "
            f"nll {nll:.4f} lr {lr:.2e} {rec['seconds']:.1f} s{' *' if improved else ''}"
            f"{' (schedule compressed by --deadline)' if compressed else ''}")
        st = {"model": cpu_sd(model), "ema": None if ema is None else cpu_sd(ema), "opt": opt.state_dict(),
              "torch_rng": torch.get_rng_state(), "epoch": epoch, "step_count": step_count, "history": history,
              "best": best}
        torch.save(st, out / f"{kind}_last.tmp")
        os.replace(out / f"{kind}_last.tmp", last)
        (out / f"{kind}_history.json").write_text(json.dumps(history, indent=1))
        if done:
            log(f"{kind}: schedule complete at step {step_count}")
            break
    return best


def time_steps(args, device, images, log) -> None:
    """Seconds per training step (teacher alone; student + frozen teacher forward) and per augmented image,
    medians of ``--time-steps`` steps after one warm-up, and what one epoch of 25.7k images costs."""
    import torch
    rng = np.random.default_rng(0)
    n = args.batch
    t = time.perf_counter()
    xb = face_data.augment_batch(images[:n], rng)
    aug = (time.perf_counter() - t) / n
    xb = torch.from_numpy(xb).to(device).contiguous(memory_format=torch.channels_last)
    tb = torch.full((n, len(face_data.LABELS)), 1.0 / len(face_data.LABELS), device=device)
    amp = args.amp == "bf16" or (args.amp == "auto" and device.type == "cuda")
    teacher = make_teacher(args).to(device).to(memory_format=torch.channels_last)
    student = make_student(args).to(device).to(memory_format=torch.channels_last)
    res = {}
    for kind, model in (("teacher", teacher), ("student", student)):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        ts = []
        for i in range(args.time_steps + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(xb)
                if kind == "student":
                    with torch.no_grad():
                        tl = teacher(xb)
            loss = soft_ce(out.float(), tb) + (0 if kind == "teacher" else 0 * tl.float().sum())
            optimizer_step(opt, loss)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                ts.append(time.perf_counter() - t)
        res[kind] = float(np.median(ts))
    per_epoch = 25700 // n
    log(f"timing at batch {n} on {device} ({torch.get_num_threads()} threads, amp {amp}): teacher step {res['teacher']:.3f} s, "
        f"student+teacher-forward step {res['student']:.3f} s, augmentation {1e3 * aug:.3f} ms/image (1 process); "
        f"per epoch of {per_epoch} steps: teacher {res['teacher'] * per_epoch:.0f} s, student {res['student'] * per_epoch:.0f} s, "
        f"augmentation {aug * per_epoch * n:.0f} s/process")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import torch
    device = setup_device(args)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.smoke:
        args.limit_train = args.limit_train or 320
        args.teacher_epochs, args.student_epochs = 1, 1
        args.max_steps = args.max_steps or 2
        args.batch = min(args.batch, 64)
        args.teacher_widths = (8, 16, 16, 32)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python export/face_distill.py " + " ".join(argv if argv is not None else sys.argv[1:])
    logf = open(out / "distill.log", "a")

    def log(msg):
        line = f"{time.strftime('%H:%M:%S', time.gmtime())} {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    t0 = time.time()
    end = deadline_ts(args.deadline)
    tr = face_data.load_split(args.train)
    images, labels, votes = tr["images"], tr["labels"], tr["votes"]
    if args.limit_train:
        keep = np.sort(np.random.default_rng(args.seed).permutation(len(images))[:args.limit_train])
        images, labels, votes = images[keep], labels[keep], votes[keep]
    if args.time_steps:
        time_steps(args, device, images, log)
        return 0
    fit, dev = face_data.dev_split(images, labels, args.dev_frac, args.seed)
    data = {"x_img": images[fit], "t_fit": face_data.soft_targets(labels[fit], votes[fit], args.ferplus_weight),
            "x_dev": face_data.preprocess_many(images[dev]), "y_dev": labels[dev]}
    log(f"{cmd}\ndevice {device} (amp {args.amp}); {len(fit)} fit / {len(dev)} dev images (stratified, exact duplicates "
        f"kept on one side), loaded in {time.time() - t0:.1f} s")

    teacher = None
    if args.stage in ("all", "teacher") and not args.teacher_ckpt:
        torch.manual_seed(args.seed)
        teacher = make_teacher(args)
        log(f"teacher: ResNet widths {args.teacher_widths} blocks {args.teacher_blocks} at {args.teacher_size} px, "
            f"{count_params(teacher):,} parameters")
        slot = None if end is None else time.time() + args.teacher_share * (end - time.time())
        if args.stage == "teacher":
            slot = end
        best_t = train_stage("teacher", teacher, data, args, device, slot, log)
        log(f"teacher best: dev acc {best_t['dev_acc']:.4f} at epoch {best_t['epoch']}")
    if args.stage == "teacher":
        return 0
    tpath = pathlib.Path(args.teacher_ckpt) if args.teacher_ckpt else out / "teacher_best.pt"
    teacher = make_teacher(args)
    teacher.load_state_dict(torch.load(tpath, map_location="cpu", weights_only=False)["model"])
    teacher = teacher.to(device).to(memory_format=torch.channels_last).eval()
    for p_ in teacher.parameters():
        p_.requires_grad_(False)
    t_acc, _, _ = evaluate(teacher, data["x_dev"], data["y_dev"], device=device)
    log(f"teacher {tpath}: dev acc {t_acc:.4f}")

    torch.manual_seed(args.seed + 1)
    student = make_student(args)
    if args.student_init:
        student.load_state_dict(torch.load(args.student_init, map_location="cpu", weights_only=False)["model"])
    params, flops = count_params(student), count_flops(student, face_data.SIZE)
    log(f"student: FaceNet widths {args.student_widths} blocks {args.student_blocks}, {params:,} parameters, "
        f"{flops / 1e6:.1f} MFLOPs")
    best_s = train_stage("student", student, data, args, device, end, log, teacher=teacher)

    # dev-fitted temperature and logit biases of the selected student (PublicTest is not read here)
    from face_export import fit_temperature
    from face_tta import fit_logit_bias

    from emoedge.evaluation.metrics import classification_report
    student = make_student(args)
    student.load_state_dict(torch.load(out / "student_best.pt", map_location="cpu", weights_only=False)["model"])
    acc, _, lg = evaluate(student.to(device), data["x_dev"], data["y_dev"], device=device)
    T = fit_temperature(lg, data["y_dev"])
    bias = fit_logit_bias(lg, data["y_dev"], len(face_data.LABELS))
    rb = classification_report(data["y_dev"], (lg + bias).argmax(1), list(face_data.LABELS))
    f1 = classification_report(data["y_dev"], lg.argmax(1), list(face_data.LABELS))["macro_f1"]
    log(f"student best: dev acc {acc:.4f} at epoch {best_s['epoch']}; dev temperature {T:.3f}; dev logit bias "
        f"{[round(float(v), 2) for v in bias]}: dev acc {acc:.4f} -> {rb['accuracy']:.4f}, macro-F1 {f1:.4f} -> {rb['macro_f1']:.4f}")
    meta = {"params": params, "flops": flops, "labels": list(face_data.LABELS), "preprocess": face_data.PREPROCESS,
            "args": {**vars(args), "teacher_widths": list(args.teacher_widths), "teacher_blocks": list(args.teacher_blocks),
                     "student_widths": list(args.student_widths), "student_blocks": list(args.student_blocks)},
            "command": cmd, "dropout": args.dropout,
            "arch": {"widths": list(args.student_widths), "blocks": list(args.student_blocks)},
            "selection": f"best epoch by dev accuracy on {len(dev)} held-out training images (--dev-frac {args.dev_frac}, "
                         f"seed {args.seed}); PublicTest not used",
            "teacher_dev_acc": t_acc, "dev_acc": acc, "dev_macro_f1": f1, "temperature_dev": T, "logit_bias_dev": [float(v) for v in bias],
            "dev_bias_acc": rb["accuracy"], "dev_bias_macro_f1": rb["macro_f1"]}
    ck = {"model": {k: v.cpu() for k, v in student.state_dict().items()}, "epoch": best_s["epoch"], "val_acc": acc, "meta": meta}
    torch.save(ck, out / "student_best.tmp")
    os.replace(out / "student_best.tmp", out / "student_best.pt")
    log(f"done in {(time.time() - t0) / 60:.1f} min; next: python export/face_export.py --ckpt {out / 'student_best.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
