"""Train the compact facial-expression model (torch CPU; export/ only).

One command (reproducible from ``--seed``; resumable; checkpoints every epoch)::

    python export/face_train.py --out /work/cache/face_run --epochs 40

Data: FER2013 Training (``fer2013_train.npz``) for training; PublicTest (``fer2013_val.npz``) for model
selection (best epoch by accuracy) and early stopping only. Targets are a mix of the original one-hot
label and the FER+ crowd-vote distribution (``--ferplus-weight``). Every training image goes through
``emoedge.kernels.preprocess`` with a random affine (see export/face_data.py), the same kernel and
parameters inference uses. Outputs in ``--out``: ``last.pt`` (resume state), ``best.pt`` (best PublicTest
accuracy), ``history.json``. ``--smoke`` runs a few steps on a few hundred images (< 1 minute).

Next step: ``python export/face_export.py --ckpt DIR/best.pt`` (ONNX FP32 + INT8, metrics, manifest).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

# Waiting OpenMP threads must sleep, not spin: on shared cores spinning burned ~3.5x the CPU time per
# step (measured: 2.4 vs 0.68 CPU-s per batch of 128). Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import face_data  # noqa: E402
from face_model import FaceNet, count_flops, count_params  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output directory (checkpoints, history)")
    p.add_argument("--train", default=str(face_data.FACES / "fer2013_train.npz"))
    p.add_argument("--val", default=str(face_data.FACES / "fer2013_val.npz"))
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--wd", type=float, default=0.05, help="weight decay (decoupled for AdamW)")
    p.add_argument("--opt", choices=("sgd", "adamw"), default="adamw")
    p.add_argument("--ferplus-weight", type=float, default=0.3, help="weight of the FER+ vote distribution in the target")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--patience", type=int, default=12, help="stop after this many epochs without a better val accuracy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (cuda when available); the recipe is the "
                   "same on both, a GPU only makes it faster")
    p.add_argument("--workers", type=int, default=0, help="augmentation worker processes (0: in the training "
                   "process); results do not depend on it (each step's augmentation has its own seed)")
    p.add_argument("--mixup", type=float, default=0.0, help="mixup Beta(alpha, alpha) on images and targets (0: off)")
    p.add_argument("--ema", type=float, default=0.0, help="evaluate and save an exponential moving average of the "
                   "weights with this decay per step (0: off)")
    p.add_argument("--limit-train", type=int, default=0, help="use only the first N (shuffled) training images")
    p.add_argument("--limit-val", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=0, help="stop each epoch after this many steps (timing/smoke)")
    p.add_argument("--deadline", default="", help="HH:MM: if the schedule would run past this wall-clock time, "
                   "compress the remaining LR schedule to end then (the run is then not step-reproducible; logged)")
    p.add_argument("--init", default="", help="start from the weights of this checkpoint (warm restart)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--smoke", action="store_true", help="2 epochs x few steps on 256 train / 128 val images")
    return p


def lr_at(progress: float, peak: float) -> float:
    """One-cycle learning rate at ``progress`` in [0,1]: linear warm-up from peak/20 over the first 15%,
    then cosine annealing down to peak/4000."""
    p = min(max(progress, 0.0), 1.0)
    if p < 0.15:
        return peak / 20 + (peak - peak / 20) * p / 0.15
    q = (p - 0.15) / 0.85
    return peak / 4000 + (peak - peak / 4000) * 0.5 * (1 + np.cos(np.pi * q))


def _parse_deadline(s):
    """'HH:MM' local wall-clock time today -> epoch seconds (None when not given)."""
    if not s:
        return None
    import datetime
    hh, mm = (int(v) for v in s.split(":"))
    now = datetime.datetime.now()
    d = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    if d <= now:
        raise SystemExit(f"--deadline {s} is in the past")
    return d.timestamp()


def soft_ce(logits, target):
    import torch
    return -(target * torch.log_softmax(logits, 1)).sum(1).mean()


def setup_device(args):
    """Set torch's thread count to ``args.threads``, resolve ``args.device`` 'auto' in place (so the run's
    recorded arguments name the device used) and return the torch.device; cuDNN autotuning on CUDA."""
    import torch
    torch.set_num_threads(args.threads)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def make_ema(model, ema: float):
    """A frozen copy of ``model`` to hold the exponential moving average of its weights, or None when
    ``ema`` (the decay) is 0."""
    if ema <= 0:
        return None
    import copy
    avg = copy.deepcopy(model)
    for p_ in avg.parameters():
        p_.requires_grad_(False)
    return avg


def param_groups(model, wd: float) -> list:
    """Optimizer parameter groups: weight decay ``wd`` on weights (ndim > 1), none on biases and norms."""
    decay = [p_ for p_ in model.parameters() if p_.ndim > 1]
    no_decay = [p_ for p_ in model.parameters() if p_.ndim <= 1]
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def restore_training(st: dict, model, opt, ema) -> None:
    """Load a ``last`` checkpoint's model, optimizer, EMA (when both have one) and torch RNG state."""
    import torch
    model.load_state_dict(st["model"])
    opt.load_state_dict(st["opt"])
    if ema is not None and st.get("ema") is not None:
        ema.load_state_dict(st["ema"])
    torch.set_rng_state(st["torch_rng"])


def optimizer_step(opt, loss) -> None:
    """Backpropagate ``loss`` and take one step of ``opt`` (gradients cleared first)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def ema_update(ema, model, decay: float, step_count: int) -> None:
    """Move ``ema``'s weights towards ``model``'s after step ``step_count`` (no-op when ``ema`` is None).
    The decay warms up as (1 + n) / (10 + n) so early averages are not dominated by the random init;
    buffers (BatchNorm statistics) are copied, not averaged."""
    if ema is None:
        return
    import torch
    d = min(decay, (1.0 + step_count) / (10.0 + step_count))
    with torch.no_grad():
        torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - d)
        for be, b in zip(ema.buffers(), model.buffers()):
            be.copy_(b)


def evaluate(model, x: np.ndarray, y: np.ndarray, batch: int = 500, device="cpu"):
    """(accuracy, mean NLL of the original labels, logits [N,7])."""
    import torch
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i:i + batch]).to(device).contiguous(memory_format=torch.channels_last)
            outs.append(model(xb).float().cpu())
    logits = torch.cat(outs)
    yt = torch.from_numpy(y)
    nll = float(torch.nn.functional.cross_entropy(logits, yt))
    acc = float((logits.argmax(1) == yt).float().mean())
    return acc, nll, logits.numpy()


def step_batches(x_img: np.ndarray, perm: np.ndarray, batch: int, steps: int, seed: int, epoch: int, workers: int,
                 pin: bool = False):
    """Iterator over (augmented float32 batch [B,1,S,S], indices) for one epoch. Step ``k`` draws its
    augmentation from ``default_rng([seed, epoch, k])``, so the batches do not depend on ``workers``."""
    import torch

    class _Steps(torch.utils.data.Dataset):
        def __len__(self):
            return steps

        def __getitem__(self, k):
            idx = perm[k * batch:(k + 1) * batch]
            xb = face_data.augment_batch(x_img[idx], np.random.default_rng([seed, epoch, k]))
            return torch.from_numpy(xb), torch.from_numpy(idx)

    if workers <= 0:
        ds = _Steps()
        return (ds[k] for k in range(steps))
    return iter(torch.utils.data.DataLoader(_Steps(), batch_size=None, shuffle=False, num_workers=workers,
                                            prefetch_factor=4, pin_memory=pin,
                                            # own generator: the loader must not draw from the global torch RNG
                                            # (dropout's), or results would depend on ``workers``
                                            generator=torch.Generator().manual_seed(seed)))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import torch
    device = setup_device(args)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python export/face_train.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.smoke:
        args.limit_train = args.limit_train or 256
        args.limit_val = args.limit_val or 128
        args.epochs = min(args.epochs, 2)
        args.max_steps = args.max_steps or 3
        args.batch = min(args.batch, 64)

    t0 = time.time()
    tr = face_data.load_split(args.train)
    va = face_data.load_split(args.val)
    rng0 = np.random.default_rng(args.seed)
    order = rng0.permutation(len(tr["images"]))
    if args.limit_train:
        order = order[:args.limit_train]
    x_img = tr["images"][order]
    y_tr = tr["labels"][order]
    t_tr = face_data.soft_targets(y_tr, tr["votes"][order], args.ferplus_weight)
    nval = args.limit_val or len(va["images"])
    x_val = face_data.preprocess_many(va["images"][:nval])
    y_val = va["labels"][:nval]
    print(f"data: {len(x_img)} train, {len(x_val)} val images, loaded+preprocessed in {time.time() - t0:.1f} s; "
          f"preprocess {face_data.PREPROCESS}", flush=True)

    torch.manual_seed(args.seed)
    model = FaceNet(n_classes=len(face_data.LABELS), dropout=args.dropout)
    params, flops = count_params(model), count_flops(model, face_data.SIZE)
    print(f"model: FaceNet {params:,} parameters, {flops / 1e6:.1f} MFLOPs per face (2 x MACs of conv+linear)", flush=True)
    if args.init:
        model.load_state_dict(torch.load(args.init, weights_only=False)["model"])
        print(f"initialised from {args.init}", flush=True)
    model = model.to(device).to(memory_format=torch.channels_last)
    ema = make_ema(model, args.ema)
    groups = param_groups(model, args.wd)
    if args.opt == "sgd":
        opt = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)
    else:
        opt = torch.optim.AdamW(groups, lr=args.lr)
    steps_per_epoch = len(x_img) // args.batch
    if args.max_steps:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    total_steps = steps_per_epoch * args.epochs
    deadline = _parse_deadline(args.deadline)
    start_epoch, best, history, since_best, step_count, train_s = 0, -1.0, [], 0, 0, 0.0
    if args.resume and (out / "last.pt").is_file():
        st = torch.load(out / "last.pt", weights_only=False)
        restore_training(st, model, opt, ema)
        start_epoch, best, history, since_best = st["epoch"] + 1, st["best"], st["history"], st["since_best"]
        step_count, train_s = st["step_count"], st["train_s"]
        print(f"resumed from {out / 'last.pt'} at epoch {start_epoch}", flush=True)

    epoch_times = []
    t_start = time.time()
    p0 = step_count / total_steps
    finished = False
    for epoch in range(start_epoch, args.epochs):
        te = time.time()
        model.train()
        perm = np.random.default_rng([args.seed, epoch]).permutation(len(x_img))
        tot, seen, prep_s = 0.0, 0, 0.0
        batches = step_batches(x_img, perm, args.batch, steps_per_epoch, args.seed, epoch, args.workers,
                               pin=device.type == "cuda")
        for step in range(steps_per_epoch):
            tp = time.time()
            xb, idx = next(batches)
            idx = idx.numpy()
            xb = xb.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            tb = torch.from_numpy(t_tr[idx]).to(device, non_blocking=True)
            if args.mixup > 0:  # mix each image with a partner from the same batch
                mrng = np.random.default_rng([args.seed, epoch, step, 1])
                lam = float(mrng.beta(args.mixup, args.mixup))
                lam = max(lam, 1.0 - lam)
                pi = torch.from_numpy(mrng.permutation(len(idx))).to(device)
                xb = lam * xb + (1.0 - lam) * xb[pi]
                tb = lam * tb + (1.0 - lam) * tb[pi]
            prep_s += time.time() - tp
            prog = step_count / total_steps
            if deadline is not None:  # compress the schedule so it ends by the deadline
                prog = max(prog, p0 + (1 - p0) * (time.time() - t_start) / max(deadline - t_start, 1.0))
            lr = lr_at(prog, args.lr)
            for g in opt.param_groups:
                g["lr"] = lr
            loss = soft_ce(model(xb), tb)
            optimizer_step(opt, loss)
            step_count += 1
            ema_update(ema, model, args.ema, step_count)
            tot += float(loss.detach()) * len(idx)
            seen += len(idx)
            if (step + 1) % 50 == 0:
                el = time.time() - te
                print(f"  epoch {epoch + 1} step {step + 1}/{steps_per_epoch} loss {tot / seen:.4f} "
                      f"{seen / el:.0f} img/s (preprocess {prep_s / el:.0%}) epoch ETA {el / (step + 1) * (steps_per_epoch - step - 1):.0f} s",
                      flush=True)
            if prog >= 1.0:
                finished = True
                print(f"  schedule complete at step {step_count} (deadline {args.deadline}); finishing", flush=True)
                break
        eval_model = ema if ema is not None else model
        acc, nll, _ = evaluate(eval_model, x_val, y_val, device=device)
        dt = time.time() - te
        epoch_times.append(dt)
        improved = acc > best
        if improved:
            best, since_best = acc, 0
        else:
            since_best += 1
        history.append({"epoch": epoch + 1, "train_loss": tot / max(seen, 1), "val_acc": acc, "val_nll": nll,
                        "lr": lr, "steps": step_count, "seconds": dt})
        remaining = (args.epochs - epoch - 1) * float(np.mean(epoch_times))
        print(f"epoch {epoch + 1}/{args.epochs} train_loss {tot / max(seen, 1):.4f} val_acc {acc:.4f} val_nll {nll:.4f} "
              f"best {best:.4f} {dt:.0f} s/epoch ETA {remaining / 60:.1f} min{' *' if improved else ''}", flush=True)
        meta = {"params": params, "flops": flops, "labels": list(face_data.LABELS), "preprocess": face_data.PREPROCESS,
                "args": vars(args), "command": cmd, "dropout": args.dropout}
        cpu_sd = lambda m: {k: v.detach().cpu() for k, v in m.state_dict().items()}  # noqa: E731
        state = {"model": cpu_sd(model), "ema": None if ema is None else cpu_sd(ema), "opt": opt.state_dict(),
                 "step_count": step_count,
                 "train_s": train_s + time.time() - t_start,
                 "torch_rng": torch.get_rng_state(), "epoch": epoch, "best": best, "history": history,
                 "since_best": since_best, "meta": meta}
        torch.save(state, out / "last.tmp")
        os.replace(out / "last.tmp", out / "last.pt")
        if improved:
            torch.save({"model": cpu_sd(eval_model), "epoch": epoch + 1, "val_acc": acc, "meta": meta}, out / "best.tmp")
            os.replace(out / "best.tmp", out / "best.pt")
        (out / "history.json").write_text(json.dumps(history, indent=1))
        if finished:
            break
        if since_best >= args.patience:
            print(f"early stop: no val improvement for {args.patience} epochs", flush=True)
            break
    print(f"done: best PublicTest accuracy {best:.4f}; total {(time.time() - t0) / 60:.1f} min; "
          f"next: python export/face_export.py --ckpt {out / 'best.pt'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
