"""Detection cadence with ROI tracking (emoedge.faces + emoedge.tracking + emoedge.roi) on real FER
faces pasted into 640x480 frames along trajectories (export/cadence_eval.py's generator): ids stay
stable, new faces are found within N frames, lost faces are dropped, cuts and faces leaving the frame
trigger a full detection at once."""
import dataclasses
import math
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "export"))
import cadence_eval as CE  # noqa: E402

from emoedge.faces import FaceAnalyzer, FaceAnalyzerOptions  # noqa: E402
from emoedge.tracking import FaceTracker, TrackerOptions  # noqa: E402

N = 5


@pytest.fixture(scope="module")
def fer(shared_data):
    p = shared_data / "faces" / "fer2013_val.npz"
    if not p.is_file():
        pytest.skip(f"{p} not found")
    return np.load(p)["images"][2000:2400]  # not the images the cadence defaults were chosen on


@pytest.fixture(scope="module")
def analyzers():
    every = FaceAnalyzer(FaceAnalyzerOptions(detect_every=1))
    cad = FaceAnalyzer(FaceAnalyzerOptions(detect_every=N, roi="template"), manifest=every.manifest)
    return every, cad


def _clip(kind, images, seed, detectable, every):
    """A generated clip whose faces the detect-every-frame pipeline finds in most frames (the FER
    faces differ in how detectable they are; the tests are about tracking, not the detector)."""
    rng = np.random.default_rng(seed)
    for _ in range(40):
        c = CE.make_clip(kind, images, rng, n_frames=60)
        res = _run(every, c)
        if all(res["found"][k] >= detectable * res["visible"][k] for k in res["visible"]):
            return c, res
    pytest.skip(f"no {kind} clip with well-detectable faces")


def _run(fa, clip):
    tr = fa.new_tracker()
    ids = {}
    found = {}
    visible = {}
    first = {}
    per_frame = []
    for i, (fr, gts) in enumerate(CE.frames_of(clip)):
        loc = fa.locate(fr, t=i / 30, tracker=tr)
        per_frame.append(loc)
        for k, g in gts.items():
            visible[k] = visible.get(k, 0) + 1
            d = [CE.match_distance(b, g) for b in loc.boxes]
            if d and min(d) <= 1.0:
                found[k] = found.get(k, 0) + 1
                first.setdefault(k, i)
                ids.setdefault(k, set()).add(loc.track_ids[int(np.argmin(d))])
    return {"found": found, "visible": visible, "first": first, "ids": ids, "locs": per_frame, "tracker": tr}


def test_ids_stable_and_fewer_detections_on_moving_faces(fer, analyzers):
    every, cad = analyzers
    for kind, seed in (("pan", 1), ("shake", 2), ("zoom", 3)):
        clip, ref = _clip(kind, fer, seed, 0.9, every)
        res = _run(cad, clip)
        assert all(len(v) == 1 for v in res["ids"].values()), f"{kind}: track ids changed: {res['ids']}"
        dets = sum(loc.detected for loc in res["locs"])
        assert dets <= len(res["locs"]) // 2, f"{kind}: {dets} full detections in {len(res['locs'])} frames"
        for k, n in ref["found"].items():
            assert res["found"].get(k, 0) >= 0.9 * n, f"{kind}: face {k} found in {res['found'].get(k, 0)} frames, " \
                                                    f"{n} with detection on every frame"


def test_new_face_found_within_n_frames(fer, analyzers):
    every, cad = analyzers
    clip, ref = _clip("two", fer, 4, 0.8, every)
    res = _run(cad, clip)
    assert 1 in ref["first"]
    delay = res["first"].get(1, 10 ** 6) - ref["first"][1]
    assert 0 <= delay <= N - 1, f"the entering face was found {delay} frames after detect-every-frame found it"
    assert all(len(v) == 1 for v in res["ids"].values())


def test_lost_face_dropped_and_cut_detected_at_once(fer, analyzers):
    every, cad = analyzers
    clip, _ = _clip("pan", fer, 5, 0.9, every)
    frames = [f for f, _ in CE.frames_of(clip)][:20]
    empty = CE.background(np.random.default_rng(99))
    tr = cad.new_tracker()
    for i, f in enumerate(frames[:12]):
        loc = cad.locate(f, t=i / 30, tracker=tr)
    assert len(loc.boxes) == 1
    # the face vanishes (a cut to an empty scene): detected at once, nothing reported, track dropped
    loc = cad.locate(empty, t=12 / 30, tracker=tr)
    assert loc.detected and loc.reason in ("scene change", "low confidence") and len(loc.boxes) == 0
    for i in range(13, 13 + N * (TrackerOptions().max_missed + 2)):
        loc = cad.locate(empty, t=i / 30, tracker=tr)
        assert len(loc.boxes) == 0
    assert tr.tracks == [], "a lost face's track must expire after max_missed detection rounds"


def test_face_leaving_the_frame_triggers_detection(fer, analyzers):
    every, cad = analyzers
    rng = np.random.default_rng(6)
    for _ in range(40):  # a clip whose face crosses the frame and leaves it within 120 frames
        clip = CE.make_clip("enter_leave", fer, rng, n_frames=120)
        gts = [g for _, g in CE.frames_of(clip)]
        if gts[-1] or sum(bool(g) for g in gts) < 20:
            continue
        ref = _run(every, clip)
        if ref["found"].get(0, 0) >= 0.8 * ref["visible"][0]:
            break
    else:
        pytest.skip("no enter_leave clip with a well-detectable face")
    res = _run(cad, clip)
    reasons = [loc.reason for loc in res["locs"] if loc.detected]
    assert "leaving the frame" in reasons, reasons
    assert len(res["ids"][0]) == 1
    # once the face is gone, no face is reported
    gone = [i for i, g in enumerate(gts) if not g and i > res["first"][0]]
    assert gone and all(len(res["locs"][i].boxes) == 0 or all(CE.inside(b) < 0.9 for b in res["locs"][i].boxes)
                        for i in gone[N:])


def test_cadence_phase_and_reasons():
    tr = FaceTracker(TrackerOptions(detect_every=4), phase=1)
    assert tr.detection_reason == "first frame"
    tr.update([[10, 10, 50, 50]], [0.9])
    seq = []
    for _ in range(10):
        r = tr.detection_reason
        seq.append(r)
        if r:
            tr.update([[10, 10, 50, 50]], [0.9])
        else:
            tr.relocate(tr.live_tracks(), [[10, 10, 50, 50]], confidences=[0.9])
    # the first interval is shortened by the phase (3 frames), then every 4 frames
    assert [i for i, r in enumerate(seq) if r] == [2, 6]
    tr.request_detection("low confidence")
    assert tr.should_detect() and tr.detection_reason == "low confidence"


def test_no_tracker_and_every_frame_unchanged(fer, analyzers):
    every, cad = analyzers
    clip, _ = _clip("pan", fer, 7, 0.9, every)
    fr, _ = next(CE.frames_of(clip))
    a = every.analyze(fr)
    b = every.analyze(fr, tracker=every.new_tracker())
    assert len(a) == len(b) and all(np.allclose(x.box, y.box) and np.array_equal(x.probs, y.probs) for x, y in zip(a, b))
    assert all(f.detected for f in b)


def test_options_validation():
    with pytest.raises(ValueError, match="roi"):
        FaceAnalyzerOptions(roi="magic").validate()
    with pytest.raises(ValueError, match="roi_min_inside"):
        FaceAnalyzerOptions(roi_min_inside=2).validate()
    with pytest.raises(ValueError, match="scene_change"):
        FaceAnalyzerOptions(scene_change=-1).validate()
    assert math.isfinite(FaceAnalyzerOptions().roi_min_confidence)


def test_classification_cadence(fer, analyzers):
    """classify_every = K: a tracked face is classified on its first frame, on every full detection and at
    least every K frames; in between it reports the probabilities of its last classification, timed at
    that frame (probs_t), and the evidence a stream builds from it carries that time."""
    every, _ = analyzers
    K = 4
    fa = FaceAnalyzer(FaceAnalyzerOptions(detect_every=N, classify_every=K), manifest=every.manifest)
    clip, _ = _clip("pan", fer, 1, 0.9, every)
    tr = fa.new_tracker()
    last = {}   # track id -> (frame index, probs, t) of its last classification
    n_cls = n_faces = 0
    for i, (fr, _) in enumerate(CE.frames_of(clip)):
        t = i / 30
        faces = fa.analyze(fr, t=t, tracker=tr)
        for f in faces:
            n_faces += 1
            if f.track_id not in last or f.detected:
                assert f.classified, f"frame {i}: a new track / a detection frame must be classified"
            if f.classified:
                n_cls += 1
                assert f.probs_t == t
                last[f.track_id] = (i, f.probs, t)
            else:
                j, p, pt = last[f.track_id]
                assert i - j < K, f"frame {i}: face {f.track_id} not classified for {i - j} frames (K={K})"
                assert f.probs is p and f.probs_t == pt < t
    assert n_faces > 40 and n_cls <= 0.6 * n_faces, (n_cls, n_faces)
    # the evidence a stream builds from a reused classification is timed at the frame it came from
    from emoedge import adapters
    reused = [f for f in faces if not f.classified] or [dataclasses.replace(faces[0], classified=False, probs_t=t - 0.1)]
    _, ev = adapters.face_evidence(reused, t)
    assert ev[0].t == reused[0].probs_t < t


def test_classification_cadence_move_and_scale_trigger():
    """A face that moved or changed size a lot since its last classification is classified again at once."""
    fa = FaceAnalyzer(FaceAnalyzerOptions(classify_every=8, classify_max_move=0.25, classify_max_scale=0.15))
    tr = FaceTracker(TrackerOptions(detect_every=8))
    tracks = tr.update([[100, 100, 80, 80]], [0.9])
    need, ex = fa._to_classify(tr, tracks, np.array([[100, 100, 80, 80.0]]), True, 0.0)
    assert need is None and ex[0].frame == 0
    ex[0].probs = np.full(len(fa.labels), 1 / len(fa.labels), np.float32)
    for box, want in (([104, 101, 80, 80], False), ([100 + 0.3 * 80, 100, 80, 80], True),
                      ([100, 100, 80 * 1.2, 80 * 1.2], True)):
        tr.relocate(tracks, [box], confidences=[0.9])
        need, ex2 = fa._to_classify(tr, tracks, np.array([box], float), False, 0.1)
        got = need is None or bool(need[0])
        assert got == want, (box, need)
        if got:  # reset the reference back to the first box for the next case
            tracks[0].state["expression"] = ex[0]
    every = FaceAnalyzer(FaceAnalyzerOptions(classify_every=1), manifest=fa.manifest)
    tr2 = every.new_tracker()
    t2 = tr2.update([[100, 100, 80, 80]], [0.9])
    tr2.relocate(t2, [[101, 100, 80, 80]], confidences=[0.9])
    assert every._to_classify(tr2, t2, np.array([[101, 100, 80, 80.0]]), False, 0.1)[0] is None
    with pytest.raises(ValueError, match="classify_every"):
        FaceAnalyzerOptions(classify_every=0).validate()
    with pytest.raises(ValueError, match="classify_max_move"):
        FaceAnalyzerOptions(classify_max_move=-1).validate()
