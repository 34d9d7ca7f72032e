"""Compact facial-expression CNN for the edge (torch; export/ only).

Design (chosen for CPU training speed and INT8 speed-up, both of which favour dense 3x3 convs over
depthwise ones on x86 without VNNI): a stride-2 stem brings 48x48 to 24x24 right away, then three
residual stages at 24x24, 12x12 and 6x6 with BN+ReLU after every conv (folds into the conv at export;
QDQ-friendly), global average pooling, dropout and one linear layer producing logits.

FLOPs are counted analytically by :func:`count_flops` as 2 x multiply-accumulates of every Conv2d and
Linear (BN folds away at export; ReLU/add/pool are ignored, < 1% here).
"""
from __future__ import annotations

import torch
from torch import nn


def conv_bn(cin: int, cout: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN + shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.c1 = conv_bn(cin, cout, stride)
        self.c2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        s = x if self.short is None else self.short(x)
        return self.act(self.c2(self.c1(x)) + s)


def residual_stages(cin: int, widths, blocks) -> tuple[nn.Sequential, int]:
    """Stages of ``blocks[i]`` basic blocks with ``widths[i]`` channels; the first block of every stage after
    the first is stride 2. Returns (stages, output channels)."""
    layers = []
    for i, (w, n) in enumerate(zip(widths, blocks)):
        for j in range(n):
            layers.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
            cin = w
    return nn.Sequential(*layers), cin


class _PooledResNet(nn.Module):
    """Shared tail of the student and the teacher: ``stem`` -> ``stages`` -> global average pool -> dropout
    -> linear. Subclasses set ``stem`` and ``stages`` and then call :meth:`_add_head`."""

    stem: nn.Module
    stages: nn.Sequential

    def _add_head(self, cin: int, n_classes: int, dropout: float) -> None:
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(cin, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.fc(self.drop(torch.flatten(self.pool(x), 1)))


class FaceNet(_PooledResNet):
    """Input float32 [N, 1, size, size] (preprocessed gray face); output logits [N, n_classes].

    ``widths``: channels of the stem and the three stages; ``blocks``: residual blocks per stage."""

    def __init__(self, n_classes: int = 7, widths=(32, 40, 80, 144), blocks=(1, 2, 2), dropout: float = 0.3):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(conv_bn(1, w0 // 2, 1), conv_bn(w0 // 2, w0, 2))  # 48 -> 24
        self.stages, cin = residual_stages(w0, (w1, w2, w3), blocks)
        self._add_head(cin, n_classes, dropout)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, size: int = 48) -> int:
    """FLOPs per face = 2 x MACs of all Conv2d and Linear layers (measured with forward hooks)."""
    macs = []

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
            macs.append(out.numel() // out.shape[0] * k)
        elif isinstance(m, nn.Linear):
            macs.append(m.in_features * m.out_features)

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, size, size))
    model.train(was)
    for h in hs:
        h.remove()
    return 2 * int(sum(macs))


class TeacherResNet(_PooledResNet):
    """ResNet-18-style teacher for small gray faces (training-time only, never shipped).

    Input float32 [N, 1, S, S] (S = 48, or larger when the batch is up-sampled); a 3x3 stem (stride 1 up
    to 64 px, else 2) then four stages of ``blocks`` basic blocks with ``widths`` channels, the last three
    at stride 2; global average pooling, dropout, linear -> logits [N, n_classes]. At 48 px with the
    default widths: 11.2 M parameters, ~2.5 GFLOPs per face."""

    def __init__(self, n_classes: int = 7, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), dropout: float = 0.3,
                 stem_stride: int = 1):
        super().__init__()
        self.stem = conv_bn(1, widths[0], stem_stride)
        self.stages, cin = residual_stages(widths[0], widths, blocks)
        self._add_head(cin, n_classes, dropout)
        for m in self.modules():  # zero-init the last BN of each residual branch (starts as identity)
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.c2[1].weight)
