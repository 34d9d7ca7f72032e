"""Fusion: invariants, mapping by name, timestamps, staleness, and parity of the C++ kernel and the
numba fallback against a numpy reference.

Parity tolerance: outputs are float32 computed in double inside both kernels; we require
max |native - reference| <= 2e-6 and max |numba - reference| <= 2e-6 on probabilities (the float32
rounding of values <= 1 is 6e-8; the slack covers float32 state round-trips over many steps)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from emoedge import fusion as F
from emoedge._native_loader import get_native
from emoedge.errors import InvalidInputError
from emoedge.labels import CANONICAL

FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
RAVDESS_LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
TOL = 2e-6


# ---------------------------------------------------------------------------------------------
# numpy reference (float64)

def ref_step(log_probs, weights, state, has_state, alpha):
    z = (np.asarray(weights, np.float64)[:, None] * np.asarray(log_probs, np.float64)).sum(0) \
        if len(weights) else np.zeros(np.asarray(state).shape[0])
    z = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
    if has_state:
        z = (1 - alpha) * np.asarray(state, np.float64) + alpha * z
    z = z - (z.max() + np.log(np.exp(z - z.max()).sum()))
    z = np.maximum(z, -1e4)
    p = np.exp(z)
    return p / p.sum(), z


def numba_step():
    pytest.importorskip("numba")
    from emoedge.kernels._numba_fusion import fusion_step
    return fusion_step


def native_step():
    nat = get_native()
    if nat is None:
        pytest.skip("emoedge._native is not built (run .ci/dev-build); native parity not checked")
    return nat.fusion_step


def random_case(rng, m, k):
    p = rng.dirichlet(np.full(k, 0.5), size=m)
    lp = np.log(p + 1e-4).astype(np.float32)
    w = rng.uniform(0, 2, size=m).astype(np.float32)
    return lp, w


@pytest.mark.parametrize("impl", ["native", "numba"])
def test_kernel_parity_with_numpy_reference(impl):
    step = native_step() if impl == "native" else numba_step()
    rng = np.random.default_rng(0)
    for k in (1, 2, 7, 8, 40):
        state = np.zeros(k, np.float32)
        ref_state = np.zeros(k)
        has = False
        for it in range(60):
            m = int(rng.integers(0, 4))
            lp, w = random_case(rng, m, k)
            alpha = float(rng.uniform(0, 1))
            out = step(lp, w, state, has, alpha)
            ref, ref_state = ref_step(lp, w, ref_state, has, alpha)
            assert out.dtype == np.float32 and out.shape == (k,)
            np.testing.assert_allclose(out, ref, atol=TOL, rtol=0)
            np.testing.assert_allclose(state, ref_state, atol=1e-4, rtol=1e-5)
            ref_state = state.astype(np.float64)  # follow the float32 state like the kernels do
            has = True


def test_native_and_numba_agree():
    nat, nb = native_step(), numba_step()
    rng = np.random.default_rng(1)
    s1 = np.zeros(7, np.float32)
    s2 = np.zeros(7, np.float32)
    for i in range(200):
        lp, w = random_case(rng, 3, 7)
        a = float(rng.uniform())
        o1 = nat(lp, w, s1, i > 0, a)
        o2 = nb(lp, w, s2, i > 0, a)
        np.testing.assert_allclose(o1, o2, atol=TOL, rtol=0)
    np.testing.assert_allclose(s1, s2, atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["native", "numba"])
def test_kernel_rejects_bad_input(impl):
    step = native_step() if impl == "native" else numba_step()
    lp = np.zeros((2, 3), np.float32)
    w = np.ones(2, np.float32)
    st = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="float32"):
        step(lp.astype(np.float64), w, st, False, 1.0)
    with pytest.raises(ValueError, match="weights"):
        step(lp, np.ones(3, np.float32), st, False, 1.0)
    with pytest.raises(ValueError, match="state"):
        step(lp, w, np.zeros(4, np.float32), False, 1.0)
    bad = lp.copy(); bad[0, 0] = -np.inf
    with pytest.raises(ValueError, match="finite"):
        step(bad, w, st, False, 1.0)
    with pytest.raises(ValueError):
        step(lp, np.array([1, -1], np.float32), st, False, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        step(lp, w, st, True, 1.5)
    ro = np.zeros(3, np.float32); ro.setflags(write=False)
    with pytest.raises(ValueError, match="writable"):
        step(lp, w, ro, False, 1.0)
    out = np.empty(3, np.float32)
    assert step(lp, w, st, False, 1.0, out) is out


# ---------------------------------------------------------------------------------------------
# FusionState invariants


def ev(mod, t, probs, labels=CANONICAL, **kw):
    return F.ModalityEvidence(modality=mod, t=t, probs=probs, labels=labels, **kw)


def test_single_modality_no_smoothing_equals_calibrated_output():
    st = F.FusionState(F.FusionOptions(tau_s=0.0))
    rng = np.random.default_rng(2)
    for i in range(20):
        p = rng.dirichlet(np.ones(8))
        e = st.update(float(i), [ev("voice", float(i), p, RAVDESS_LABELS, temperature=1.7)])
        cal = F.calibrate(p, RAVDESS_LABELS, 1.7)
        np.testing.assert_allclose(e.probs, cal, atol=TOL)
        np.testing.assert_allclose(e.contributions["voice"].probs, cal, atol=1e-7)
        assert e.contributions["voice"].weight == pytest.approx(1.0)


def test_calibrate_temperature_logits_and_probs_agree():
    logits = np.array([2.0, -1.0, 0.5, 0.0, 1.0, -3.0, 0.2])
    p = np.exp(logits) / np.exp(logits).sum()
    for T in (0.5, 1.0, 2.5):
        a = F.calibrate(logits=logits, labels=FER_LABELS, temperature=T)
        b = F.calibrate(p, FER_LABELS, T)
        np.testing.assert_allclose(a, b, atol=1e-12)
    # T > 1 flattens, T < 1 sharpens
    assert F.calibrate(p, FER_LABELS, 3.0).max() < F.calibrate(p, FER_LABELS, 1.0).max() < F.calibrate(p, FER_LABELS, 0.5).max()


def test_mapping_by_name_not_position():
    # the same evidence in two different label orders gives the same canonical output
    p_fer = np.array([0.05, 0.05, 0.1, 0.6, 0.1, 0.05, 0.05])  # happy in FER order (index 3)
    perm = np.random.default_rng(3).permutation(7)
    labels_perm = tuple(FER_LABELS[i] for i in perm)
    a = F.FusionState(F.FusionOptions(tau_s=0)).update(0, [ev("face", 0, p_fer, FER_LABELS)])
    b = F.FusionState(F.FusionOptions(tau_s=0)).update(0, [ev("face", 0, p_fer[perm], labels_perm)])
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-7)
    assert a.label == b.label == "happy"
    # calm counts as neutral; names are mapped (surprise -> surprised, disgust -> disgusted)
    v = np.zeros(8); v[RAVDESS_LABELS.index("calm")] = 0.9; v[RAVDESS_LABELS.index("surprised")] = 0.1
    c = F.calibrate(v, RAVDESS_LABELS, eps=1e-9)
    assert c[CANONICAL.index("neutral")] == pytest.approx(0.9, abs=1e-6)
    assert c[CANONICAL.index("surprised")] == pytest.approx(0.1, abs=1e-6)
    with pytest.raises(InvalidInputError, match="no mapping"):
        F.calibrate([0.5, 0.5], ("happy", "hapy"))


def test_sums_to_one_and_finite_with_zeros_and_one_hot():
    st = F.FusionState()
    one_hot_face = np.eye(7)[FER_LABELS.index("angry")]
    one_hot_voice = np.eye(8)[RAVDESS_LABELS.index("happy")]
    for i in range(30):
        t = i * 0.1
        e = st.update(t, [ev("face", t, one_hot_face, FER_LABELS), ev("voice", t, one_hot_voice, RAVDESS_LABELS),
                          ev("text", t, np.zeros(7) + np.eye(7)[0], CANONICAL, reliability=0.0)])
        assert np.all(np.isfinite(e.probs)) and abs(float(e.probs.sum()) - 1) < 1e-5
        assert 0 < e.confidence <= 1
    # contradicting one-hots: neither vetoes the other thanks to the eps floor
    assert e.probs[CANONICAL.index("angry")] > 0.3 and e.probs[CANONICAL.index("happy")] > 0.3


def test_pooling_is_weighted_log_linear():
    a = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.03, 0.02])
    b = np.array([0.1, 0.5, 0.1, 0.1, 0.1, 0.05, 0.05])
    opts = F.FusionOptions(tau_s=0, weights={"face": 1.0, "voice": 0.5})
    e = F.FusionState(opts).update(1.0, [ev("face", 1.0, a, reliability=0.8), ev("voice", 1.0, b)])
    ca, cb = F.calibrate(a), F.calibrate(b)
    ref = np.exp(0.8 * np.log(ca) + 0.5 * np.log(cb)); ref /= ref.sum()
    np.testing.assert_allclose(e.probs, ref, atol=TOL)
    assert e.contributions["face"].weight == pytest.approx(0.8)
    assert e.contributions["voice"].weight == pytest.approx(0.5)


def test_timestamps_must_not_go_backwards():
    st = F.FusionState()
    st.update(2.0)
    st.update(2.0)  # equal is fine
    with pytest.raises(InvalidInputError, match=r"t=1\.5 s after t=2\.0 s"):
        st.update(1.5)
    with pytest.raises(InvalidInputError, match="newer than the update time"):
        st.update(3.0, [ev("face", 3.5, np.ones(7))])
    with pytest.raises(InvalidInputError, match="finite"):
        st.update(float("nan"))
    st.update_face(1, 5.0, np.ones(7))
    with pytest.raises(InvalidInputError, match="track 1"):
        st.update_face(1, 4.0, np.ones(7))
    st.reset()
    st.update(0.0)  # reset allows starting over


def test_missing_modality_drops_out_and_staleness():
    opts = F.FusionOptions(tau_s=0, half_life_s={"face": 1.0, "voice": 2.0}, max_age_s={"face": 3.0, "voice": 5.0})
    st = F.FusionState(opts)
    face = np.array([0.1, 0.6, 0.1, 0.05, 0.05, 0.05, 0.05])
    voice = np.array([0.05, 0.05, 0.6, 0.1, 0.1, 0.05, 0.05])
    e0 = st.update(0.0, [ev("face", 0.0, face), ev("voice", 0.0, voice)])
    assert set(e0.contributions) == {"face", "voice"}
    e1 = st.update(2.0)
    assert e1.contributions["face"].weight == pytest.approx(0.25)  # two half-lives
    assert e1.contributions["voice"].weight == pytest.approx(0.5)
    assert e1.contributions["face"].age_s == pytest.approx(2.0)
    e2 = st.update(4.0)  # face is older than 3 s: dropped; voice only
    assert set(e2.contributions) == {"voice"}
    cv = F.calibrate(voice)
    ref = np.exp(0.25 * np.log(cv)); ref /= ref.sum()
    np.testing.assert_allclose(e2.probs, ref, atol=TOL)
    e3 = st.update(6.0)  # everything stale: uniform
    assert e3.contributions == {}
    np.testing.assert_allclose(e3.probs, np.full(7, 1 / 7), atol=1e-6)
    # a never-seen modality contributes nothing: fused == voice-only
    a = F.FusionState(F.FusionOptions(tau_s=0)).update(0, [ev("voice", 0, voice)])
    np.testing.assert_allclose(a.probs, cv, atol=TOL)


def test_no_evidence_decays_towards_uniform_with_tau():
    st = F.FusionState(F.FusionOptions(tau_s=1.0, max_age_s={"face": 0.0}))
    e0 = st.update(0.0, [ev("face", 0.0, np.eye(7)[1] * 0.9 + 0.1 / 7)])
    e1 = st.update(1.0)
    e2 = st.update(5.0)
    ent = lambda p: float(-(p * np.log(p)).sum())
    assert ent(e0.probs) < ent(e1.probs) < ent(e2.probs) <= math.log(7) + 1e-6
    # log-space state after dt = tau keeps exp(-1) of the original log-ratio
    l0 = np.log(e0.probs); l1 = np.log(e1.probs)
    assert (l1[1] - l1[0]) == pytest.approx(math.exp(-1) * (l0[1] - l0[0]), rel=1e-4)


def test_smoothing_time_aware_and_same_t_redo():
    a = np.array([0.7, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    b = a[::-1].copy()
    tau = 0.5
    st = F.FusionState(F.FusionOptions(tau_s=tau))
    st.update(0.0, [ev("face", 0.0, a)])
    e = st.update(0.2, [ev("face", 0.2, b)])
    alpha = 1 - math.exp(-0.2 / tau)
    ref = np.exp((1 - alpha) * np.log(F.calibrate(a)) + alpha * np.log(F.calibrate(b))); ref /= ref.sum()
    np.testing.assert_allclose(e.probs, ref, atol=1e-5)
    # delivering voice at the same t redoes the step with both pieces of evidence
    v = np.full(7, 1 / 7); v[2] = 0.5; v /= v.sum()
    e_split = st.update(0.2, [ev("voice", 0.2, v)])
    st2 = F.FusionState(F.FusionOptions(tau_s=tau))
    st2.update(0.0, [ev("face", 0.0, a)])
    e_joint = st2.update(0.2, [ev("face", 0.2, b), ev("voice", 0.2, v)])
    np.testing.assert_allclose(e_split.probs, e_joint.probs, atol=1e-6)


def test_per_face_smoothing_and_primary_face():
    opts = F.FusionOptions(tau_s=0, face_tau_s=0.3, track_max_age_s=1.0)
    st = F.FusionState(opts)
    happy = np.eye(7)[1] * 0.8 + 0.2 / 7
    sad = np.eye(7)[2] * 0.8 + 0.2 / 7
    e = st.update(0.0, [ev("face", 0.0, happy, track_id=1, reliability=0.9),
                        ev("face", 0.0, sad, track_id=2, reliability=0.3)])
    assert set(e.faces) == {1, 2}
    assert e.contributions["face"].track_id == 1  # most reliable face is the stream's face evidence
    assert e.label == "happy"
    e = st.update(0.1, [ev("face", 0.1, sad, track_id=1, reliability=0.9)])
    alpha = 1 - math.exp(-0.1 / 0.3)
    ref = np.exp((1 - alpha) * np.log(F.calibrate(happy)) + alpha * np.log(F.calibrate(sad))); ref /= ref.sum()
    np.testing.assert_allclose(e.faces[1], ref, atol=1e-5)
    assert set(e.faces) == {1}
    st.update(2.0)
    assert st.tracks == []  # both tracks unseen for > track_max_age_s
    p = st.update_face(7, 2.0, happy)
    np.testing.assert_allclose(p, F.calibrate(happy), atol=TOL)
    st.drop_track(7)
    assert st.tracks == []


def test_estimate_is_json_serializable():
    st = F.FusionState()
    e = st.update(0.0, [ev("face", 0.0, np.ones(7), FER_LABELS, track_id=4), ev("voice", 0.0, np.ones(8), RAVDESS_LABELS)])
    d = json.loads(json.dumps(e.to_dict()))
    assert d["labels"] == list(CANONICAL) and abs(sum(d["probs"]) - 1) < 1e-5 and "4" in d["faces"]


def test_options_validate_and_round_trip():
    o = F.FusionOptions(tau_s=0.25, weights={"face": 2.0, "voice": 1.0})
    assert F.FusionOptions.from_dict(json.loads(json.dumps(o.to_dict()))) == o
    for bad in (dict(tau_s=-1), dict(eps=0), dict(half_life_s={"face": 0}), dict(labels=("happy", "joyful")),
                dict(weights={"face": float("nan")})):
        with pytest.raises(InvalidInputError, match="FusionOptions"):
            F.FusionOptions(**bad).validate()
    with pytest.raises(InvalidInputError, match="unknown"):
        F.FusionOptions.from_dict({"tau": 1})


def test_subset_of_labels():
    opts = F.FusionOptions(labels=("happy", "sad", "angry"), tau_s=0)
    e = F.FusionState(opts).update(0.0, [ev("face", 0.0, [0.1, 0.1, 0.1, 0.4, 0.2, 0.0, 0.1], FER_LABELS)])
    assert e.labels == ("happy", "sad", "angry") and e.probs.shape == (3,)
    ref = F.calibrate(np.array([0.4, 0.2, 0.1]), ("happy", "sad", "angry"), canonical=("happy", "sad", "angry"))
    np.testing.assert_allclose(e.probs, ref, atol=TOL)


def test_bad_evidence_errors():
    st = F.FusionState()
    with pytest.raises(InvalidInputError, match="one value per label"):
        st.update(0, [ev("face", 0, np.ones(6), FER_LABELS)])
    with pytest.raises(InvalidInputError, match="NaN"):
        st.update(0, [ev("face", 0, np.array([np.nan] * 7), FER_LABELS)])
    with pytest.raises(InvalidInputError, match="reliability"):
        st.update(0, [ev("face", 0, np.ones(7), FER_LABELS, reliability=1.5)])
    with pytest.raises(InvalidInputError, match="temperature"):
        st.update(0, [ev("face", 0, np.ones(7), FER_LABELS, temperature=0)])
    with pytest.raises(InvalidInputError, match="sum to 0"):
        st.update(0, [ev("face", 0, np.zeros(7), FER_LABELS)])
    with pytest.raises(InvalidInputError, match=">= 0"):
        st.update(0, [ev("face", 0, -np.ones(7), FER_LABELS)])
    with pytest.raises(InvalidInputError, match="ModalityEvidence"):
        st.update(0, [{"modality": "face"}])


def test_reliability_helpers():
    assert F.face_reliability(96, 0.9) == pytest.approx(0.9)
    assert F.face_reliability(24, 1.0) == pytest.approx(0.5)
    assert F.face_reliability(0, 1.0) == 0.0
    assert F.voice_reliability(0.2) == 0.0 and F.voice_reliability(0.95) == 1.0
    assert F.voice_reliability(0.55) == pytest.approx(0.5)
    assert F.text_reliability(0) == 0.0 and 0.6 < F.text_reliability(8) < 0.65 and F.text_reliability(100) > 0.99
    with pytest.raises(InvalidInputError):
        F.voice_reliability(float("nan"))
    entry = {"labels": list(RAVDESS_LABELS), "temperature": 1.4}
    e = F.ModalityEvidence.from_manifest(entry, "voice", 0.0, np.ones(8) / 8, reliability=0.5)
    assert e.temperature == 1.4 and e.labels == RAVDESS_LABELS
    assert F.manifest_temperature({"calibration": {"temperature": 2.0}}) == 2.0
    assert F.manifest_temperature({}) == 1.0


def test_fusion_state_same_result_on_numba_fallback(monkeypatch):
    numba_step()
    rng = np.random.default_rng(5)
    seq = []
    for i in range(40):
        t = i * 0.05
        seq.append((t, [ev("face", t, rng.dirichlet(np.ones(7)), FER_LABELS, track_id=1, reliability=0.7),
                        ev("voice", t, rng.dirichlet(np.ones(8)), RAVDESS_LABELS, temperature=1.3)]))
    st = F.FusionState()
    a = [st.update(t, e).probs for t, e in seq]
    monkeypatch.setattr(F, "get_native", lambda: None)
    assert F.kernel_backend() == "numba"
    st = F.FusionState()
    b = [st.update(t, e).probs for t, e in seq]
    np.testing.assert_allclose(np.array(a), np.array(b), atol=TOL)


def test_public_reference_matches_kernels():
    rng = np.random.default_rng(6)
    seq = []
    for i in range(30):
        t = i * 0.07
        seq.append((t, [ev("face", t, rng.dirichlet(np.ones(7)), FER_LABELS, track_id=i % 2, reliability=0.6),
                        ev("voice", t, rng.dirichlet(np.ones(8)), RAVDESS_LABELS)]))
    st_a, st_b = F.FusionState(), F.FusionState(kernel=F.fusion_step_reference)
    for t, e in seq:
        a, b = st_a.update(t, e), st_b.update(t, e)
        np.testing.assert_allclose(a.probs, b.probs, atol=TOL)
        for tid in a.faces:
            np.testing.assert_allclose(a.faces[tid], b.faces[tid], atol=TOL)


def test_property_random_evidence_gives_proper_distribution():
    hyp = pytest.importorskip("hypothesis")
    st_ = pytest.importorskip("hypothesis.strategies")

    probs8 = st_.lists(st_.floats(0, 1e6, allow_nan=False), min_size=8, max_size=8).filter(lambda v: sum(v) > 0)
    probs7 = st_.lists(st_.floats(0, 1e6, allow_nan=False), min_size=7, max_size=7).filter(lambda v: sum(v) > 0)

    @hyp.settings(max_examples=60, deadline=None)
    @hyp.given(steps=st_.lists(st_.tuples(st_.floats(0, 5), probs7, probs8, st_.floats(0, 1), st_.floats(0.05, 20),
                                          st_.booleans()), min_size=1, max_size=8),
               tau=st_.floats(0, 3))
    def check(steps, tau):
        s = F.FusionState(F.FusionOptions(tau_s=tau))
        t = 0.0
        for dt, pf, pv, rel, temp, with_voice in steps:
            t += dt
            evs = [ev("face", t, pf, FER_LABELS, reliability=rel, temperature=temp, track_id=0)]
            if with_voice:
                evs.append(ev("voice", t, pv, RAVDESS_LABELS, temperature=temp))
            e = s.update(t, evs)
            assert np.all(np.isfinite(e.probs)) and abs(float(e.probs.sum()) - 1) < 1e-5
            assert all(np.isfinite(v).all() and abs(float(v.sum()) - 1) < 1e-5 for v in e.faces.values())

    check()


def test_bad_item_leaves_state_untouched():
    st = F.FusionState(F.FusionOptions(tau_s=0))
    good = ev("face", 0.0, [0.1, 0.6, 0.1, 0.05, 0.05, 0.05, 0.05])
    with pytest.raises(InvalidInputError):
        st.update(0.0, [good, ev("voice", 0.0, np.ones(3), RAVDESS_LABELS)])
    assert st.last_t is None
    e = st.update(0.0)
    assert e.contributions == {}  # the good item of the failed update was not kept


def test_older_evidence_for_same_key_is_ignored():
    st = F.FusionState(F.FusionOptions(tau_s=0))
    newer = [0.1, 0.6, 0.1, 0.05, 0.05, 0.05, 0.05]
    st.update(1.0, [ev("voice", 1.0, newer)])
    e = st.update(1.0, [ev("voice", 0.5, [0.6, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05])])
    assert e.contributions["voice"].t == 1.0 and e.label == "happy"
