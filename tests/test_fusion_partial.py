"""Fusion over partial label spaces: a modality that does not model class K carries no evidence about K.

Rule (README "Fusion"): in the log-linear pool, a modality's log-evidence for a class it does not model is
its own largest log-probability over the classes it does model. Property tests (hypothesis) on
FusionState with every kernel (C++, numba, numpy reference):
(a) a modality that is uniform over what it models changes nothing;
(b) a modality lacking K never lowers K's rank (nor K's probability);
(c) permuting a model's label order (or the output label order) gives the same (permuted) output;
(d) adding confident agreeing evidence for class A never moves the argmax away from A.
Plus kernel parity with masks (tolerance 2e-6 on probabilities, as in tests/test_fusion.py)."""
from __future__ import annotations

import numpy as np
import pytest

from emoedge import fusion as F
from emoedge._native_loader import get_native
from emoedge.labels import CANONICAL

hyp = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TOL = 2e-6
K = len(CANONICAL)
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def kernels():
    out = [("reference", F.fusion_step_reference)]
    nat = get_native()
    if nat is not None:
        out.append(("native", nat.fusion_step))
    from emoedge.kernels._numba_fusion import fusion_step as nb
    out.append(("numba", nb))
    return out


KERNELS = kernels()
KERNEL_IDS = [k for k, _ in KERNELS]


def dist(seed, n, conc=0.7):
    return np.random.default_rng(seed).dirichlet(np.full(n, conc))


@st.composite
def evidence_set(draw, max_mods=3):
    """Random evidence: 1..max_mods modalities, each with a random subset (>= 1) of canonical labels in
    random order, random probabilities, reliability and age."""
    n = draw(st.integers(1, max_mods))
    evs = []
    for i in range(n):
        labs = draw(st.lists(st.sampled_from(CANONICAL), min_size=1, max_size=K, unique=True))
        seed = draw(st.integers(0, 2**31 - 1))
        rel = draw(st.floats(0.05, 1.0))
        age = draw(st.floats(0.0, 2.0))
        evs.append(F.ModalityEvidence(f"m{i}", 10.0 - age, probs=dist(seed, len(labs)), labels=tuple(labs),
                                      reliability=rel))
    return evs


def fused(evs, kernel, opts=None, t=10.0):
    return F.FusionState(opts or F.FusionOptions(tau_s=0.0), kernel=kernel).update(t, evs).probs.astype(np.float64)


def rank(p, k, tol=1e-6):
    """Number of classes strictly (beyond tol) more probable than class k."""
    return int((p > p[k] + tol).sum())


@pytest.mark.parametrize("name,kernel", KERNELS, ids=KERNEL_IDS)
@SETTINGS
@given(base=evidence_set(), labs=st.lists(st.sampled_from(CANONICAL), min_size=1, max_size=K, unique=True),
       rel=st.floats(0.05, 1.0))
def test_a_uniform_over_what_it_models_changes_nothing(name, kernel, base, labs, rel):
    p0 = fused(base, kernel)
    extra = F.ModalityEvidence("extra", 10.0, probs=np.full(len(labs), 1.0 / len(labs)), labels=tuple(labs),
                               reliability=rel)
    p1 = fused(base + [extra], kernel)
    np.testing.assert_allclose(p1, p0, atol=5e-6)


@pytest.mark.parametrize("name,kernel", KERNELS, ids=KERNEL_IDS)
@SETTINGS
@given(base=evidence_set(), missing=st.sampled_from(CANONICAL), n_labs=st.integers(1, K - 1),
       seed=st.integers(0, 2**31 - 1), rel=st.floats(0.05, 1.0), conc=st.floats(0.05, 3.0))
def test_b_modality_lacking_k_never_lowers_k(name, kernel, base, missing, n_labs, seed, rel, conc):
    rng = np.random.default_rng(seed)
    others = [c for c in CANONICAL if c != missing]
    labs = tuple(rng.permutation(others)[:n_labs])
    extra = F.ModalityEvidence("extra", 10.0, probs=rng.dirichlet(np.full(len(labs), conc)), labels=labs,
                               reliability=rel)
    k = CANONICAL.index(missing)
    p0 = fused(base, kernel)
    p1 = fused(base + [extra], kernel)
    assert rank(p1, k) <= rank(p0, k), (p0, p1, labs)
    assert p1[k] >= p0[k] - 5e-6, (p0[k], p1[k])


@pytest.mark.parametrize("name,kernel", KERNELS, ids=KERNEL_IDS)
@SETTINGS
@given(evs=evidence_set(), seed=st.integers(0, 2**31 - 1))
def test_c_permuted_label_orders_give_identical_output(name, kernel, evs, seed):
    rng = np.random.default_rng(seed)
    p0 = fused(evs, kernel)
    perm_evs = []
    for e in evs:
        order = rng.permutation(len(e.labels))
        perm_evs.append(F.ModalityEvidence(e.modality, e.t, probs=np.asarray(e.probs)[order],
                                           labels=tuple(np.asarray(e.labels)[order]), reliability=e.reliability))
    np.testing.assert_allclose(fused(perm_evs, kernel), p0, atol=TOL)
    # the output label order too: same distribution, permuted
    out_order = tuple(rng.permutation(CANONICAL))
    p2 = fused(evs, kernel, F.FusionOptions(tau_s=0.0, labels=out_order))
    np.testing.assert_allclose(p2, p0[[CANONICAL.index(c) for c in out_order]], atol=TOL)


@pytest.mark.parametrize("name,kernel", KERNELS, ids=KERNEL_IDS)
@SETTINGS
@given(base=evidence_set(), seed=st.integers(0, 2**31 - 1), conf=st.floats(0.5, 0.999), rel=st.floats(0.05, 1.0),
       partial=st.booleans(), steps=st.integers(1, 4))
def test_d_confident_agreeing_evidence_keeps_argmax(name, kernel, base, seed, conf, rel, partial, steps):
    """Over a smoothed stream (tau 0.5 s, steps 0.1 s apart), adding evidence that puts its largest mass on
    the current argmax A never moves the argmax away from A, and never lowers A's probability."""
    rng = np.random.default_rng(seed)
    opts = F.FusionOptions(tau_s=0.5)
    sa, sb = F.FusionState(opts, kernel=kernel), F.FusionState(opts, kernel=kernel)
    t = 10.0
    for i in range(steps):  # identical history (shifted copies of the base evidence)
        evs = [F.ModalityEvidence(e.modality, t - (10.0 - e.t), probs=e.probs, labels=e.labels,
                                  reliability=e.reliability) for e in base]
        pa = sa.update(t, evs).probs
        sb.update(t, evs)
        t += 0.1
    a = int(np.argmax(pa))
    labs = list(CANONICAL)
    if partial:  # the agreeing modality may model only some classes (always including A)
        keep = [c for c in CANONICAL if c == CANONICAL[a] or rng.random() < 0.5]
        labs = keep
    rest = rng.dirichlet(np.ones(len(labs))) * (1 - conf)
    probs = rest.copy()
    probs[labs.index(CANONICAL[a])] = conf + rest[labs.index(CANONICAL[a])]
    probs[labs.index(CANONICAL[a])] = max(probs[labs.index(CANONICAL[a])], probs.max() + 1e-3)
    probs /= probs.sum()
    agree = F.ModalityEvidence("agree", t, probs=probs, labels=tuple(labs), reliability=rel)
    p_without = sa.update(t, []).probs.astype(np.float64)
    p_with = sb.update(t, [agree]).probs.astype(np.float64)
    if int(np.argmax(p_without)) == a:
        assert int(np.argmax(p_with)) == a, (p_without, p_with)
    assert p_with[a] >= p_without[a] - 5e-6


@pytest.mark.parametrize("name,kernel", [k for k in KERNELS if k[0] != "reference"],
                         ids=[k for k in KERNEL_IDS if k != "reference"])
def test_masked_kernel_parity(name, kernel):
    rng = np.random.default_rng(3)
    for m in (1, 2, 3, 5):
        for k in (2, 7, 20):
            lp = np.log(rng.dirichlet(np.full(k, 0.5), size=m) + 1e-4).astype(np.float32)
            w = rng.uniform(0, 2, size=m).astype(np.float32)
            mask = (rng.random((m, k)) < 0.6).astype(np.uint8)
            mask[0, :] = 0  # a row that models nothing: no evidence
            s1 = np.log(rng.dirichlet(np.ones(k))).astype(np.float32)
            s2 = s1.copy()
            a = kernel(lp, w, s1, True, 0.3, None, mask)
            r = F.fusion_step_reference(lp, w, s2, True, 0.3, mask=mask)
            np.testing.assert_allclose(a, r, atol=TOL)
            np.testing.assert_allclose(s1, s2, atol=1e-5)
            # bool masks work the same; a full mask equals no mask
            np.testing.assert_allclose(kernel(lp, w, s1.copy(), False, 1.0, None, mask.astype(bool)),
                                       F.fusion_step_reference(lp, w, s2.copy(), False, 1.0, mask=mask), atol=TOL)
            full = np.ones((m, k), np.uint8)
            np.testing.assert_allclose(kernel(lp, w, s1.copy(), False, 1.0, None, full),
                                       kernel(lp, w, s1.copy(), False, 1.0), atol=0)


@pytest.mark.parametrize("name,kernel", [k for k in KERNELS if k[0] != "reference"],
                         ids=[k for k in KERNEL_IDS if k != "reference"])
def test_masked_kernel_rejects_bad_masks(name, kernel):
    from emoedge.errors import EmoEdgeError
    lp = np.zeros((2, 3), np.float32)
    w = np.ones(2, np.float32)
    for bad in (np.ones((2, 2), np.uint8), np.ones((2, 3), np.float32), [[1, 1, 1], [1, 1, 1]]):
        with pytest.raises((ValueError, EmoEdgeError)):
            kernel(lp, w, np.zeros(3, np.float32), False, 1.0, None, bad)


def test_text_model_without_neutral_cannot_vote_against_neutral():
    """The failure of issue 14: face and voice say neutral; a CARER-style text model (no neutral, no
    disgust) saying 'sadness' must not turn the fused label away from neutral."""
    carer = ("sadness", "joy", "love", "anger", "fear", "surprise")
    face = F.ModalityEvidence("face", 1.0, probs=[0.05, 0.02, 0.05, 0.05, 0.03, 0.05, 0.75],
                              labels=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"))
    voice = F.ModalityEvidence("voice", 1.0, probs=[0.7, 0.1, 0.04, 0.04, 0.03, 0.03, 0.03, 0.03],
                               labels=("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"))
    text = F.ModalityEvidence("text", 1.0, probs=[0.40, 0.2, 0.1, 0.1, 0.1, 0.1], labels=carer)
    est = F.FusionState(F.FusionOptions(tau_s=0.0)).update(1.0, [face, voice, text])
    assert est.label == "neutral"
    assert est.contributions["text"].probs[CANONICAL.index("neutral")] == 0.0  # not modelled: reported as 0
