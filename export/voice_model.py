"""Compact CNN for speech emotion over log-mel windows (torch; export/ only).

Input ``logmel`` float32 [B, T, n_mels] (dB, exactly as emoedge.kernels.log_mel returns it per frame);
the per-band normalisation (mean/std measured on training frames) is part of the graph, so the runtime
feeds raw log-mel frames. Output ``logits`` float32 [B, n_classes].
"""
from __future__ import annotations

import torch
from torch import nn


def real_frames(x: torch.Tensor, pad_value: float) -> torch.Tensor:
    """[B, T, M] dB -> [B, T, 1] float 1/0: frames that are real audio, not the runtime's left padding
    (the log-mel of digital silence, ``pad_value`` in every band)."""
    return (x.amax(dim=2, keepdim=True) > pad_value + 1.0).to(x.dtype)


def downsample_mask(m: torch.Tensor, n_stride2: int = 4) -> torch.Tensor:
    """[B, 1, T] 0/1 -> [B, 1, T'] with T' the time length after ``n_stride2`` (3, stride 2, pad 1)
    convolutions: an output step is real when any input frame in its last-layer footprint is real."""
    for _ in range(n_stride2):
        m = torch.nn.functional.max_pool1d(m, 3, stride=2, padding=1)
    return m


def pool_time(h: torch.Tensor, m, kind: str) -> torch.Tensor:
    """Pool [B, C, T'] over time -> [B, k * C]. ``m``: [B, 1, T'] real-step mask or None (all real).
    kind "mean": mean + max; "stats": mean + standard deviation + max (statistics pooling). With a mask
    only the real steps count, so a short utterance is described by what exists, not by padding."""
    if m is None:
        mu = h.mean(dim=2)
        mx = h.amax(dim=2)
        if kind == "mean":
            return torch.cat([mu, mx], dim=1)
        sd = torch.sqrt(((h - mu[:, :, None]) ** 2).mean(dim=2) + 1e-5)
        return torch.cat([mu, sd, mx], dim=1)
    cnt = m.sum(dim=2).clamp_min(1.0)                       # [B, 1]
    mu = (h * m).sum(dim=2) / cnt
    mx = (h + (m - 1.0) * 1e4).amax(dim=2)
    if kind == "mean":
        return torch.cat([mu, mx], dim=1)
    sd = torch.sqrt((((h - mu[:, :, None]) ** 2) * m).sum(dim=2) / cnt + 1e-5)
    return torch.cat([mu, sd, mx], dim=1)


def conv_bn(cin: int, cout: int, stride) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VoiceCNN(nn.Module):
    """Seven 3x3 conv+BN+ReLU layers (four stride-2), frequency mean, time mean+max pooling, linear head.
    widths=(16, 24, 48, 96): ~0.17 M parameters, ~20 M multiply-adds for a 200x64 window."""

    def __init__(self, n_mels: int = 64, n_classes: int = 8, widths=(16, 24, 48, 96), dropout: float = 0.3,
                 cmn: bool = False, pad_value: float = -100.0, pool: str = "mean", mask: bool = False):
        super().__init__()
        w0, w1, w2, w3 = widths
        if pool not in ("mean", "flat", "stats"):
            raise ValueError(f"pool must be 'mean', 'flat' or 'stats', got {pool!r}")
        if mask and (cmn or pool == "flat"):
            raise ValueError("mask=True works with the global normalisation and pool 'mean'/'stats'")
        self.pool = pool
        self.mask = bool(mask)
        self.cmn = cmn
        self.pad_value = float(pad_value)
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("inv_std", torch.ones(n_mels))
        self.features = nn.Sequential(
            conv_bn(2 if cmn else 1, w0, 2),
            conv_bn(w0, w1, 2), conv_bn(w1, w1, 1),
            conv_bn(w1, w2, 2), conv_bn(w2, w2, 1),
            conv_bn(w2, w3, 2), conv_bn(w3, w3, 1),
        )
        self.drop = nn.Dropout(dropout)
        # pool="mean": frequency mean, then time mean+max; "flat": time mean+max of every (channel, frequency
        # row) of the last feature map (keeps where in the spectrum a pattern is; n_mels/16 rows)
        f_out = -(-n_mels // 16) if pool == "flat" else 1
        self.head = nn.Linear((3 if pool == "stats" else 2) * w3 * f_out, n_classes)

    def set_norm(self, mean, std) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.inv_std.copy_(1.0 / torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-3))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, M] dB -> [B, C, M, T] normalised. With ``cmn``: per-window mean normalisation of each
        band over the real (non-padding) frames, padding frames set to 0, plus a 0/1 channel marking the
        real frames (C = 2); otherwise global per-band normalisation only (C = 1)."""
        if not self.cmn:
            z = (x - self.mean) * self.inv_std
            if self.mask:         # padding frames -> exactly 0 (as the convolutions' own zero padding)
                z = z * real_frames(x, self.pad_value)
            return z.transpose(1, 2).unsqueeze(1)
        real = (x.amax(dim=2, keepdim=True) > self.pad_value + 1.0).to(x.dtype)      # [B, T, 1]
        cnt = real.sum(dim=1, keepdim=True).clamp_min(1.0)
        mu = (x * real).sum(dim=1, keepdim=True) / cnt                                # [B, 1, M]
        z = (x - mu) * self.inv_std * real
        mask = real.expand_as(z)
        return torch.stack([z, mask], dim=1).transpose(2, 3)                          # [B, 2, M, T]

    def forward_normalized(self, z: torch.Tensor) -> torch.Tensor:
        h = self.features(z)              # [B, C, F', T']
        if self.pool == "flat":
            h = torch.cat([h.mean(dim=3).flatten(1), h.amax(dim=3).flatten(1)], dim=1)
            return self.head(self.drop(h))
        m = None
        if self.mask:                     # real steps: frames whose normalised value is not exactly 0
            m = downsample_mask((z[:, 0].abs().amax(dim=1, keepdim=True) > 0).to(z.dtype))   # [B, 1, T']
        h = h.mean(dim=2)                 # [B, C, T']
        return self.head(self.drop(pool_time(h, m, self.pool)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_normalized(self.normalize(x))


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())



def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d):
    s = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    return conv.weight.detach() * s[:, None, None, None], bn.bias.detach() - bn.running_mean * s


def _time_major_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """conv+BN of a [B, C, M, T] VoiceCNN layer as one conv on [B, C, T, M]: BN folded, kernel transposed
    (3x3, equal strides and padding in both axes, so the output is exactly the transposed output)."""
    w, b = _fold_bn(conv, bn)
    assert conv.stride[0] == conv.stride[1] and conv.padding[0] == conv.padding[1]
    c = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                  padding=conv.padding, bias=True)
    c.weight.data.copy_(w.transpose(2, 3))
    c.bias.data.copy_(b)
    return c


class VoiceEnsemble(nn.Module):
    """Probability average of several trained VoiceCNN members in one graph (same function as running the
    members separately and averaging their softmax). Input ``logmel`` [B, W, n_mels] with W = the longest
    member window; a member with a shorter window sees the latest ``window_frames`` frames (exactly the
    window the runtime would give it). Output: log of the mean member softmax (clamped at 1e-6), named
    ``logits``, so the runtime's softmax(logits / T) returns the averaged probabilities for T = 1.

    Built for speed at batch 1: members with the global band normalisation share it (one Sub/Mul), the
    layers run time-major on [B, C, T, M] (transposed kernels, so no Transpose of the input), BatchNorm is
    folded into the convolutions. The first convolution of each member is ``stems[k]`` (export/voice_export.py
    keeps it FP32: a 1-channel convolution is faster in FP32 than as QLinearConv)."""

    def __init__(self, members, window_frames):
        super().__init__()
        self.window_frames = [int(w) for w in window_frames]
        self.W = max(self.window_frames)
        self.cmn = [bool(m.cmn) for m in members]
        self.pool = [getattr(m, "pool", "mean") for m in members]
        self.mask = [bool(getattr(m, "mask", False)) for m in members]
        self.pad_value = float(members[0].pad_value)
        g = [m for m in members if not m.cmn]
        for m in g[1:]:
            if not (torch.allclose(m.mean, g[0].mean) and torch.allclose(m.inv_std, g[0].inv_std)):
                raise ValueError("members with global normalisation need the same band mean/std")
        self.register_buffer("mean", (g[0] if g else members[0]).mean.clone())
        self.register_buffer("inv_std", (g[0] if g else members[0]).inv_std.clone())
        self.register_buffer("cmn_inv_std", torch.stack([m.inv_std for m in members]))
        self.stems = nn.ModuleList()
        self.bodies = nn.ModuleList()
        self.heads = nn.ModuleList()
        for m in members:
            layers = [_time_major_conv(seq[0], seq[1]) for seq in m.features]
            self.stems.append(layers[0])
            body = []
            for c in layers[1:]:
                body += [c, nn.ReLU()]
            self.bodies.append(nn.Sequential(*body))
            self.heads.append(m.head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zg = None
        p = None
        for k, w in enumerate(self.window_frames):
            xk = x if w == self.W else x[:, self.W - w:]
            if self.cmn[k]:
                real = (xk.amax(dim=2, keepdim=True) > self.pad_value + 1.0).to(x.dtype)      # [B, T, 1]
                cnt = real.sum(dim=1, keepdim=True).clamp_min(1.0)
                mu = (xk * real).sum(dim=1, keepdim=True) / cnt
                zc = (xk - mu) * self.cmn_inv_std[k] * real
                z = torch.stack([zc, real.expand_as(zc)], dim=1)                             # [B, 2, T, M]
            else:
                if zg is None:
                    zg = ((x - self.mean) * self.inv_std).unsqueeze(1)                       # [B, 1, W, M]
                z = zg if w == self.W else zg[:, :, self.W - w:]
                if self.mask[k]:
                    real = real_frames(xk, self.pad_value)                                   # [B, T, 1]
                    z = z * real.unsqueeze(1)
            h = self.bodies[k](torch.relu(self.stems[k](z)))     # [B, C, T', M']
            if self.pool[k] == "flat":                            # per (channel, frequency row), over time
                h = torch.cat([h.mean(dim=2).flatten(1), h.amax(dim=2).flatten(1)], dim=1)
            else:
                h = h.mean(dim=3)                                 # frequency mean -> [B, C, T']
                mk = downsample_mask(real.transpose(1, 2)) if self.mask[k] else None
                h = pool_time(h, mk, self.pool[k])
            pk = torch.softmax(self.heads[k](h), dim=1)
            p = pk if p is None else p + pk
        return torch.log((p / len(self.window_frames)).clamp_min(1e-6))
