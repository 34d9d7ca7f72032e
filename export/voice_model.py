"""Compact CNN for speech emotion over log-mel windows (torch; export/ only).

Input ``logmel`` float32 [B, T, n_mels] (dB, exactly as emoedge.kernels.log_mel returns it per frame);
the per-band normalisation (mean/std measured on training frames) is part of the graph, so the runtime
feeds raw log-mel frames. Output ``logits`` float32 [B, n_classes].
"""
from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, stride) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VoiceCNN(nn.Module):
    """Seven 3x3 conv+BN+ReLU layers (four stride-2), frequency mean, time mean+max pooling, linear head.
    widths=(16, 24, 48, 96): ~0.17 M parameters, ~20 M multiply-adds for a 200x64 window."""

    def __init__(self, n_mels: int = 64, n_classes: int = 8, widths=(16, 24, 48, 96), dropout: float = 0.3,
                 cmn: bool = False, pad_value: float = -100.0):
        super().__init__()
        w0, w1, w2, w3 = widths
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
        self.head = nn.Linear(2 * w3, n_classes)

    def set_norm(self, mean, std) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.inv_std.copy_(1.0 / torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-3))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, M] dB -> [B, C, M, T] normalised. With ``cmn``: per-window mean normalisation of each
        band over the real (non-padding) frames, padding frames set to 0, plus a 0/1 channel marking the
        real frames (C = 2); otherwise global per-band normalisation only (C = 1)."""
        if not self.cmn:
            x = (x - self.mean) * self.inv_std
            return x.transpose(1, 2).unsqueeze(1)
        real = (x.amax(dim=2, keepdim=True) > self.pad_value + 1.0).to(x.dtype)      # [B, T, 1]
        cnt = real.sum(dim=1, keepdim=True).clamp_min(1.0)
        mu = (x * real).sum(dim=1, keepdim=True) / cnt                                # [B, 1, M]
        z = (x - mu) * self.inv_std * real
        mask = real.expand_as(z)
        return torch.stack([z, mask], dim=1).transpose(2, 3)                          # [B, 2, M, T]

    def forward_normalized(self, z: torch.Tensor) -> torch.Tensor:
        h = self.features(z)              # [B, C, F', T']
        h = h.mean(dim=2)                 # [B, C, T']
        h = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
        return self.head(self.drop(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_normalized(self.normalize(x))


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
