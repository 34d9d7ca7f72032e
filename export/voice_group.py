"""Train several voice CNNs of one recipe and fold at once (one process, one GPU), optionally distilled
from a larger teacher. Same recipe, data, augmentation and checkpoint format as export/voice_train.py.

K members (one per seed) become ONE network of grouped convolutions (``groups=K``): member k owns channel
block k of every layer, BatchNorm statistics are per channel, so per member, and each member gets its own
augmented batch, mixup draw and loss. The loss is the sum of the members' losses, and AdamW is element-wise,
so each member trains exactly as it would alone (up to float rounding) while a step costs about one
member's kernel launches. That is what makes 200-epoch, 5-fold, 3-seed recipe selection fit a ten-minute
GPU session.

    python export/voice_group.py --fold K --seeds 5,6,7 --epochs 200 --device cuda --out runs/cv/A200/foldK
    python export/voice_group.py ... --teacher runs/cv/T200/foldK      # + distillation (KD) from its members

Writes OUT/seedS/voice_cnn.pt per member (voice_train.py's format; args.seed = S) and, for a CV fold
(K >= 0), OUT/seedS/fold_eval.* per member and OUT/fold_eval.{json,npz} of the ensemble (mean of member
probabilities, what the exported ensemble graph computes).
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "export"))

import voice_data as vd  # noqa: E402
import voice_train as vt  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402
from voice_model import VoiceCNN, count_params, downsample_mask, pool_time, real_frames  # noqa: E402

log = vt.log


class GroupedVoiceCNN(nn.Module):
    """K VoiceCNN members (same widths/pool/mask, global normalisation, same band mean/std) as one network.

    forward_normalized(z [B, K, M, T]) -> logits [B, K, C]: member k sees channel k of z."""

    def __init__(self, members):
        super().__init__()
        m0 = members[0]
        if any(m.cmn for m in members):
            raise ValueError("grouped training supports the global normalisation only (cmn=0)")
        self.K = K = len(members)
        self.pool, self.mask = m0.pool, m0.mask
        if self.pool == "flat":
            raise ValueError("grouped training supports pool 'mean'/'stats'")
        self.register_buffer("mean", m0.mean.clone())
        self.register_buffer("inv_std", m0.inv_std.clone())
        self.pad_value = m0.pad_value
        layers = []
        for li, seq in enumerate(m0.features):
            conv, bn = seq[0], seq[1]
            c = nn.Conv2d(K * conv.in_channels, K * conv.out_channels, 3, stride=conv.stride, padding=1,
                          groups=K, bias=False)
            b = nn.BatchNorm2d(K * bn.num_features, eps=bn.eps, momentum=bn.momentum)
            with torch.no_grad():
                c.weight.copy_(torch.cat([m.features[li][0].weight for m in members]))
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(b, name).copy_(torch.cat([getattr(m.features[li][1], name) for m in members]))
            layers.append(nn.Sequential(c, b, nn.ReLU(inplace=True)))
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(m0.drop.p)
        self.heads = nn.ModuleList([nn.Linear(m.head.in_features, m.head.out_features) for m in members])
        with torch.no_grad():
            for h, m in zip(self.heads, members):
                h.weight.copy_(m.head.weight)
                h.bias.copy_(m.head.bias)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, M] dB -> [B, 1, M, T], exactly VoiceCNN.normalize (global normalisation)."""
        z = (x - self.mean) * self.inv_std
        if self.mask:
            z = z * real_frames(x, self.pad_value)
        return z.transpose(1, 2).unsqueeze(1)

    def forward_normalized(self, z: torch.Tensor) -> torch.Tensor:
        B = z.shape[0]
        h = self.features(z).mean(dim=2)                  # [B, K*C, T']
        h = h.view(B, self.K, -1, h.shape[-1])
        out = []
        for k in range(self.K):
            m = None
            if self.mask:
                m = downsample_mask((z[:, k].abs().amax(dim=1, keepdim=True) > 0).to(z.dtype))
            out.append(self.heads[k](self.drop(pool_time(h[:, k], m, self.pool))))
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def unpack_into(self, members) -> None:
        """Copy the trained weights and BatchNorm statistics back into the K VoiceCNN members."""
        for li, seq in enumerate(self.features):
            w = seq[0].weight.chunk(self.K)
            stats = {n: getattr(seq[1], n).chunk(self.K) for n in ("weight", "bias", "running_mean", "running_var")}
            for k, m in enumerate(members):
                m.features[li][0].weight.copy_(w[k])
                for n, v in stats.items():
                    getattr(m.features[li][1], n).copy_(v[k])
                m.features[li][1].num_batches_tracked.copy_(seq[1].num_batches_tracked)
        for k, m in enumerate(members):
            m.head.weight.copy_(self.heads[k].weight)
            m.head.bias.copy_(self.heads[k].bias)


def load_teacher(d: pathlib.Path, device):
    """The members of a finished teacher group (d/seed*/voice_cnn.pt) in eval mode on ``device``."""
    cks = sorted(d.glob("seed*/voice_cnn.pt"))
    if not cks:
        raise SystemExit(f"no teacher members under {d}")
    out = []
    for p in cks:
        ck = torch.load(p, map_location="cpu", weights_only=False)
        m = VoiceCNN(n_mels=ck["n_mels"], n_classes=len(ck["labels"]), widths=tuple(ck["widths"]), cmn=ck["cmn"],
                     pad_value=ck["pad_value"], pool=ck["pool"], mask=ck["mask"])
        m.load_state_dict(ck["state_dict"])
        out.append(m.to(device).eval())
    return out, [str(p) for p in cks]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="5,6,7")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--teacher", default=None, help="folder of a finished teacher group (seed*/voice_cnn.pt)")
    ap.add_argument("--kd-alpha", type=float, default=0.5, help="weight of the distillation loss (1 - it: labels)")
    ap.add_argument("--kd-t", type=float, default=2.0, help="distillation temperature")
    for a in ("epochs", "batch"):
        ap.add_argument(f"--{a}", type=int, default={"epochs": 100, "batch": 32}[a])
    for a, v in (("lr", 3e-3), ("wd", 1e-3), ("window_s", 2.0), ("hop_s", 0.5), ("min_fill_s", 1.0),
                 ("label_smoothing", 0.1), ("short_p", 0.0), ("mixup", 0.4), ("mixup_p", 0.5)):
        ap.add_argument("--" + a.replace("_", "-"), type=float, default=v)
    ap.add_argument("--widths", default="24,32,64,128")
    ap.add_argument("--pool", default="mean", choices=("mean", "stats"))
    ap.add_argument("--mask", type=int, default=0)
    ap.add_argument("--speed", default="0.9,1.1")
    ap.add_argument("--fold", type=int, required=True, help="CV fold K (0-4) or -1 (final fit, every speaker)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=None, help="only this many clips (smoke tests)")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    dev = torch.device(args.device)
    torch.set_num_threads(1)
    torch.backends.cudnn.benchmark = True
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from emoedge import kernels
    opts = kernels.LogMelOptions()
    clips, skipped = vd.load_clips(opts, log=log, limit=args.limit)
    train, held = vd.split(clips, args.fold)
    W, H, min_fill, pad = vt.window_geometry(opts, args.window_s, args.hop_s, args.min_fill_s)
    allf = np.concatenate([c.frames for c in train])
    band_mean, band_std = allf.mean(0), allf.std(0)
    factors = tuple(float(f) for f in args.speed.split(",") if f.strip())
    if factors:
        var = vd.speed_variants(clips, opts, factors, log=log, cache_dir=None if args.limit else "")
        train = vt.with_speed_variants(train, clips, var, factors)
    log(f"fold {args.fold}: train {len(train)} windows-sources (incl. speed variants), held-out {len(held)} clips; "
        f"seeds {seeds} on {dev}")

    widths = tuple(int(v) for v in args.widths.split(","))
    members = []
    for s in seeds:
        torch.manual_seed(s)
        m = VoiceCNN(n_mels=opts.n_mels, n_classes=len(vd.MODEL_LABELS), widths=widths, pad_value=pad,
                     pool=args.pool, mask=bool(args.mask))
        m.set_norm(band_mean, band_std)
        members.append(m)
    net = GroupedVoiceCNN(members).to(dev)
    log(f"{len(seeds)} x VoiceCNN widths={widths} params={count_params(members[0])} each")
    teacher, teacher_cks = (None, None)
    if args.teacher:
        teacher, teacher_cks = load_teacher(pathlib.Path(args.teacher), dev)
        for t in teacher:
            if not (torch.allclose(t.mean.cpu(), members[0].mean) and torch.allclose(t.inv_std.cpu(), members[0].inv_std)):
                raise SystemExit("the teacher was trained on other data (band normalisation differs)")
        log(f"distilling from {len(teacher)} teacher members (alpha {args.kd_alpha}, T {args.kd_t})")
    samplers = [vt.Sampler(train, W, min_fill, pad, band_mean, vt.noise_bank(opts, s), s, short_p=args.short_p,
                           keep_padding=bool(args.mask)) for s in seeds]
    rngs = [np.random.default_rng(s + 1) for s in seeds]
    orders = [np.array([], np.int64) for _ in seeds]
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.wd)
    steps_per_epoch = max(1, len(train) // args.batch // (1 + len(factors)))
    total = args.epochs * steps_per_epoch
    warm = max(1, int(0.03 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    lossf = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    net.train()
    t0 = time.time()
    run_loss = None
    for step in range(1, total + 1):
        zs, targets = [], []
        for k in range(len(seeds)):
            if len(orders[k]) < args.batch:
                orders[k] = np.concatenate([orders[k], rngs[k].permutation(len(train))])
            idx, orders[k] = orders[k][:args.batch], orders[k][args.batch:]
            x, y = samplers[k].batch(idx)
            z = net.normalize(torch.from_numpy(x).to(dev, non_blocking=True))
            yt = torch.from_numpy(y).to(dev)
            if args.mixup > 0 and rngs[k].random() < args.mixup_p:
                lam = float(rngs[k].beta(args.mixup, args.mixup))
                perm = torch.from_numpy(rngs[k].permutation(len(idx))).to(dev)
                z = lam * z + (1 - lam) * z[perm]
                targets.append((lam, yt, yt[perm]))
            else:
                targets.append((1.0, yt, yt))
            zs.append(z)
        z = torch.cat(zs, dim=1)                              # [B, K, M, T]
        logits = net.forward_normalized(z)                    # [B, K, C]
        loss = 0.0
        if teacher is not None:
            with torch.no_grad():
                zt = torch.cat(zs, dim=0)                     # [K*B, 1, M, T]
                pt = sum(torch.softmax(t.forward_normalized(zt) / args.kd_t, dim=1) for t in teacher) / len(teacher)
                pt = pt.view(len(seeds), -1, pt.shape[-1])
        for k, (lam, ya, yb) in enumerate(targets):
            lk = logits[:, k]
            ce = lam * lossf(lk, ya) + (1 - lam) * lossf(lk, yb)
            if teacher is not None:
                kd = torch.nn.functional.kl_div(torch.log_softmax(lk / args.kd_t, dim=1), pt[k],
                                                reduction="batchmean") * args.kd_t ** 2
                ce = (1 - args.kd_alpha) * ce + args.kd_alpha * kd
            loss = loss + ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 200 == 0 or step == total:
            lv = loss.item() / len(seeds)
            run_loss = lv if run_loss is None else 0.9 * run_loss + 0.1 * lv
            el = time.time() - t0
            log(f"step {step}/{total} epoch {step / steps_per_epoch:.1f} loss {run_loss:.3f} {el:.0f}s, "
                f"ETA {el / step * (total - step):.0f}s")
    net.eval()
    net.cpu().unpack_into(members)
    train_s = time.time() - t0
    reports = []
    for s, m in zip(seeds, members):
        m.eval()
        d = out / f"seed{s}"
        d.mkdir(parents=True, exist_ok=True)
        margs = {**{k: v for k, v in vars(args).items() if k not in ("seeds", "device", "limit")},
                 "seed": s, "cmn": 0, "threads": 1, "smoke": False, "no_export": True, "out": str(d),
                 "group": {"seeds": seeds, "device": str(dev), "teacher": teacher_cks}}
        torch.save({"state_dict": m.state_dict(), "widths": widths, "n_mels": opts.n_mels, "cmn": False,
                    "pool": args.pool, "mask": bool(args.mask), "fold": args.fold, "labels": list(vd.MODEL_LABELS),
                    "logmel": vd.opts_dict(opts), "window_frames": W, "hop_frames": H, "min_fill_frames": min_fill,
                    "window_s": args.window_s, "hop_s": args.hop_s, "min_fill_s": args.min_fill_s, "pad_value": pad,
                    "args": margs, "history": [], "train_seconds": train_s, "steps": total, "skipped": skipped},
                   d / "voice_cnn.pt")
        if args.fold >= 0 and held:
            m.to(dev)
            reports.append(vt.fold_report(m, held, opts, W, H, min_fill, pad, d))
            m.cpu()
    if args.fold >= 0 and held:
        ensemble_report(out, seeds)
    log(f"done in {time.time() - t0:.0f}s")
    return 0


def ensemble_report(out: pathlib.Path, seeds) -> dict:
    """OUT/fold_eval.{json,npz}: the members' mean probabilities per clip and their accuracy per corpus."""
    zs = [np.load(out / f"seed{s}" / "fold_eval.npz") for s in seeds]
    arrays = {k: zs[0][k] for k in ("labels", "speaker", "corpus", "index")}
    rep = {}
    for key in zs[0].files:
        if not key.startswith("probs_"):
            continue
        p = np.mean([z[key] for z in zs], axis=0)
        arrays[key] = p
        rep[key[len("probs_"):]] = vt.accuracy_by_corpus(p, arrays["labels"], arrays["corpus"])
    rep["members"] = [int(s) for s in seeds]
    np.savez(out / "fold_eval.npz", **arrays)
    (out / "fold_eval.json").write_text(json.dumps(rep, indent=1))
    log(f"ensemble out-of-fold: {json.dumps(rep)}")
    return rep


if __name__ == "__main__":
    sys.exit(main())
