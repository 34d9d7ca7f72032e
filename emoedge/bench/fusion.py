"""Fusion latency: the pooling + smoothing kernel (C++, and the numba fallback) against the plain numpy
reference of the same math, and a whole ``FusionState.update`` (face + voice + text evidence, mapping
by name, calibration, per-face smoothing) with the native kernel against the same update with the numpy
reference kernel. Timings interleaved in one run, single thread, warm-up discarded, medians."""
from __future__ import annotations

import numpy as np

from . import compare, row

FER = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
RAV = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


def _kernel_case(rng, m=3, k=7):
    lp = np.log(rng.dirichlet(np.ones(k), size=m) + 1e-4).astype(np.float32)
    w = rng.uniform(0.2, 1.0, size=m).astype(np.float32)
    return lp, w


def run(quick: bool = True) -> list:
    from .. import fusion as F
    from .._native_loader import get_native
    rng = np.random.default_rng(0)
    reps = 2000 if quick else 20000
    rows = []
    lp, w = _kernel_case(rng)
    st_ref = np.zeros(7, np.float32)
    ref = lambda: F.fusion_step_reference(lp, w, st_ref, True, 0.1)  # noqa: E731
    impls = []
    nat = get_native()
    if nat is not None:
        impls.append(("native", nat.fusion_step))
    try:
        from ..kernels._numba_fusion import fusion_step as nb
        impls.append(("numba", nb))
    except ImportError:  # pragma: no cover - numba is a runtime dependency
        pass
    for name, fn in impls:
        st = np.zeros(7, np.float32)
        out = np.empty(7, np.float32)
        fn(lp, w, st, False, 1.0, out)
        ours, anc = compare(lambda: fn(lp, w, st, True, 0.1, out), ref, reps)
        rows.append(row(f"fusion_step_3x7/{name}", ours, anc, anchor="numpy float64 reference (same math)",
                        anchor_version=np.__version__, threads=1, kernel=name))

    # whole update: 3 modalities, one face track, labels mapped by name, temperatures applied
    face = rng.dirichlet(np.ones(7), size=64)
    voice = rng.dirichlet(np.ones(8), size=64)
    text = rng.dirichlet(np.ones(7), size=64)

    def updater(kernel):
        st = F.FusionState(kernel=kernel)
        state = {"i": 0}

        def step():
            i = state["i"]
            state["i"] = i + 1
            t = i * 0.033
            j = i % 64
            st.update(t, [F.ModalityEvidence("face", t, probs=face[j], labels=FER, temperature=1.2, reliability=0.9, track_id=1),
                          F.ModalityEvidence("voice", t, probs=voice[j], labels=RAV, temperature=1.4, reliability=0.8),
                          F.ModalityEvidence("text", t, probs=text[j], temperature=1.1, reliability=0.6)])
        return step

    ours, anc = compare(updater(None), updater(F.fusion_step_reference), max(200, reps // 4))
    rows.append(row("fusion_update_face+voice+text", ours, anc,
                    anchor="FusionState.update with the numpy reference kernel", anchor_version=np.__version__,
                    threads=1, kernel=F.kernel_backend()))
    return rows
