import numpy as np
import pytest

from emoedge.tracking import FaceTracker, TrackerOptions, iou_xywh


def test_iou():
    assert iou_xywh((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou_xywh((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou_xywh((0, 0, 10, 10), (20, 0, 10, 10)) == 0.0


def test_ids_stable_for_moving_faces_in_any_order():
    tr = FaceTracker()
    rng = np.random.default_rng(0)
    a, b = np.array([50.0, 60, 100, 100]), np.array([400.0, 200, 120, 120])
    first = tr.update([a, b], t=0.0)
    ids = [t.track_id for t in first]
    assert ids == [1, 2]
    for i in range(1, 30):
        a[:2] += (6, 2)
        b[:2] -= (5, 1)
        boxes = [a + rng.normal(0, 1, 4) * (1, 1, 0, 0), b.copy()]
        order = [1, 0] if i % 2 else [0, 1]  # the detector's order must not matter
        got = tr.update([boxes[j] for j in order], t=i / 30)
        assert [g.track_id for g in got] == [ids[j] for j in order]
    assert all(t.hits == 30 for t in tr.tracks)


def test_new_face_gets_new_id_and_lost_face_expires():
    tr = FaceTracker(TrackerOptions(max_missed=2))
    (t1,) = tr.update([[10, 10, 50, 50]])
    t1.state["ema"] = 0.5  # per-track state persists
    t1b, t2 = tr.update([[12, 10, 50, 50], [300, 300, 50, 50]])
    assert t1b.track_id == t1.track_id and t1b.state["ema"] == 0.5 and t2.track_id == 2
    for _ in range(3):
        tr.update([[300, 300, 50, 50]])
    assert [t.track_id for t in tr.tracks] == [2]
    (t3,) = tr.update([[12, 10, 50, 50]])  # the old face is back: a fresh id, ids never reused
    assert t3.track_id == 3


def test_fast_motion_matched_by_centre_distance():
    tr = FaceTracker()
    tr.update([[100, 100, 100, 100]])
    (t,) = tr.update([[140, 100, 100, 100]])  # IoU 0.43
    assert t.track_id == 1
    (t,) = tr.update([[180, 125, 100, 100]])  # IoU 0.29, centre 0.47 widths away
    assert t.track_id == 1
    (t,) = tr.update([[400, 100, 100, 100]])  # far: a different face
    assert t.track_id == 2


def test_predict_between_detections():
    tr = FaceTracker(TrackerOptions(detect_every=3, velocity_smoothing=0.0))
    assert tr.should_detect()
    tr.update([[100, 100, 50, 50]])
    tr.update([[110, 100, 50, 50]])  # 10 px / frame
    assert not tr.should_detect() or tr.frame_index % 3 == 0
    (p,) = tr.predict()
    assert p.box[0] == pytest.approx(120)
    (p,) = tr.predict()
    assert p.box[0] == pytest.approx(130)
    (t,) = tr.update([[141, 100, 50, 50]])
    assert t.track_id == 1 and t.velocity[0] == pytest.approx(31 / 3)


def test_bad_options_and_input():
    with pytest.raises(ValueError, match="detect_every"):
        FaceTracker(TrackerOptions(detect_every=0))
    with pytest.raises(ValueError, match="iou_threshold"):
        TrackerOptions(iou_threshold=0).validate()
    with pytest.raises(ValueError, match="NaN"):
        FaceTracker().update([[np.nan, 0, 1, 1]])
    assert TrackerOptions.from_dict(TrackerOptions(max_missed=3).to_dict()).max_missed == 3
    with pytest.raises(ValueError, match="unknown"):
        TrackerOptions.from_dict({"bogus": 1})


def test_update_with_no_detections_and_empty_keypoints():
    import numpy as np
    from emoedge.tracking import FaceTracker
    tr = FaceTracker()
    assert tr.update(np.zeros((1, 4)) + [10, 10, 50, 50], [0.9], np.zeros((1, 6, 2)), t=0.0)
    assert tr.update(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2)), t=0.1) == []
