"""Cross-stream micro-batching (emoedge.scheduler): the events of every stream are identical with and
without batching (synchronous batches and the threaded front), per-stream order is kept, and
backpressure drops are counted, never silent."""
import threading

import numpy as np
import pytest

from emoedge.bench.e2e import sample_frames
from emoedge.engine import Engine
from emoedge.errors import EmoEdgeError, InvalidInputError
from emoedge.scheduler import SchedulerOptions

STREAMS, FRAMES = 4, 24


@pytest.fixture(scope="module")
def frames():
    return sample_frames(40)


def _feeds(frames):
    """Per stream: (frame, t) at 15 fps, each stream starting at another offset of the demo clip."""
    return [[(frames[(7 * s + i) % len(frames)], i / 15.0) for i in range(FRAMES)] for s in range(STREAMS)]


def _key(ev):
    d = ev.to_dict() if hasattr(ev, "to_dict") else ev.__dict__
    d = {k: v for k, v in d.items() if k not in ("latency_ms", "frame")}
    return repr(d)


def _interleaved(feeds):
    return [(s, fr, t) for i in range(FRAMES) for s, feed in enumerate(feeds) for fr, t in [feed[i]]]


def _engine(classify_every=None):
    from emoedge.faces import FaceAnalyzerOptions
    fo = None if classify_every is None else FaceAnalyzerOptions(classify_every=classify_every)
    return Engine(voice=False, text=False, threads=1, face_options=fo)


def _reference(feeds, classify_every=None):
    eng = _engine(classify_every)
    sts = [eng.stream(stream_id=f"s{k}") for k in range(STREAMS)]
    out = {k: [] for k in range(STREAMS)}
    for s, fr, t in _interleaved(feeds):
        out[s] += [_key(e) for e in sts[s].push_frame(fr, t)]
    return out, sts


@pytest.mark.parametrize("classify_every", [1, None])  # every frame / the default classification cadence
def test_batched_events_identical_to_one_by_one(frames, classify_every):
    feeds = _feeds(frames)
    ref, ref_streams = _reference(feeds, classify_every)
    assert all(len(v) == FRAMES for v in ref.values())
    assert sum(st.stats.faces for st in ref_streams) >= STREAMS * FRAMES * 0.9
    for batch in (True, False):
        eng = _engine(classify_every)
        sched = eng.scheduler(batch=batch)
        sts = [eng.stream(stream_id=f"s{k}") for k in range(STREAMS)]
        items = _interleaved(feeds)
        got = {k: [] for k in range(STREAMS)}
        for j in range(0, len(items), 7):  # uneven batches, a stream may appear twice in one
            chunk = items[j:j + 7]
            res = sched.run_batch([(sts[s], fr, t) for s, fr, t in chunk])
            for (s, _, _), evs in zip(chunk, res):
                assert not isinstance(evs, BaseException), evs
                got[s] += [_key(e) for e in evs]
        assert got == ref, f"batch={batch}: events differ from one-by-one push_frame"
        if batch:  # with the classification cadence fewer faces of a batch need the model
            assert max(sched.batch_sizes) >= (6 if classify_every == 1 else 2)


def test_threaded_submit_keeps_order_and_events(frames):
    feeds = _feeds(frames)
    ref, _ = _reference(feeds)
    eng = _engine()
    sts = [eng.stream(stream_id=f"s{k}") for k in range(STREAMS)]
    got = {k: [] for k in range(STREAMS)}
    with eng.scheduler(max_wait_ms=2.0, max_batch=16) as sched:
        def feed(s):  # one thread per stream, as cameras would
            futs = [sched.submit(sts[s], fr, t) for fr, t in feeds[s]]
            got[s] = [_key(e) for f in futs for e in f.result(timeout=60)]
        # streams take cadence phases in creation order: same streams, same phases as the reference
        ths = [threading.Thread(target=feed, args=(s,)) for s in range(STREAMS)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
    assert got == ref
    assert sched.frames == STREAMS * FRAMES and sched.batches < STREAMS * FRAMES


def test_backpressure_drops_are_counted(frames):
    eng = _engine()
    st = eng.stream()
    sched = eng.scheduler(max_batch=1, max_pending=1, max_wait_ms=0.0)
    futs = [sched.submit(st, frames[i % len(frames)], i / 15.0, block=False) for i in range(40)]
    sched.close()
    done = [f for f in futs if f is not None]
    for f in done:
        f.result(timeout=60)
    assert st.stats.frames_dropped == futs.count(None) >= 1
    assert st.stats.frames_in == 40 and st.stats.frames_processed == len(done)
    with pytest.raises(EmoEdgeError, match="closed"):
        sched.submit(st, frames[0], 99.0)


def test_errors_stay_with_their_item(frames):
    eng = _engine()
    a, b = eng.stream(), eng.stream()
    sched = eng.scheduler()
    res = sched.run_batch([(a, frames[0], 0.0), (b, np.zeros((4, 4, 3), np.uint8), 0.0), (a, frames[1], 0.0)])
    assert len(res[0]) == 1
    assert isinstance(res[1], InvalidInputError) and "too small" in str(res[1])
    assert isinstance(res[2], InvalidInputError) and "timestamp" in str(res[2])  # same t again on stream a
    other = _engine().stream()
    assert isinstance(sched.run_batch([(other, frames[0], 0.0)])[0], InvalidInputError)
    with pytest.raises(ValueError, match="max_pending"):
        SchedulerOptions(max_batch=8, max_pending=4).validate()
