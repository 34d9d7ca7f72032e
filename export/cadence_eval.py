"""Detection cadence on moving faces: face-found recall of the cadence settings vs detect-every-frame.

One command (CPU, a few minutes):  python export/cadence_eval.py [--clips 24] [--seed 0]
Writes export/results/cadence_eval.json and prints a table.

Test set (development data only: FER2013 PublicTest faces, shared/data/faces/fer2013_val.npz): clips of
640x480 frames at 30 fps. Each clip has a static grey-noise background plus per-frame sensor noise
(+-3 grey levels) and one or two FER faces (48x48, resampled bicubic) pasted along a trajectory:

* ``pan``: steady motion, 2-8 px/frame, face 120-220 px;
* ``zoom``: the face grows or shrinks 0.6-1.6x over the clip while drifting;
* ``enter_leave``: a face enters from one side, crosses and leaves (4-12 px/frame);
* ``shake``: head-shake motion (sinusoid, 15-40 px, 0.7-2 s period) with in-plane rotation up to 10 deg;
* ``two``: one face wobbling in place, a second one entering mid-clip;
* ``cut``: a scene cut in mid-clip (new background, the face jumps elsewhere).

Ground truth: every pasted face whose BlazeFace-convention box (tests/test_detect.py: side 0.84 s,
centre 0.07 s below the pasted square's centre) is at least 90 % inside the frame. Found: some reported
face (FaceAnalyzer.locate with a per-clip tracker) has its centre within 0.25 s of that box's centre and a
width 0.6-1.6x its width (FER framing varies by ~0.1 s per image, so IoU >= 0.5 would reject correct
detections of loosely framed faces). Recall = found / ground truth
over all frames of all clips. Also: full detections per frame, ms per frame of the locate stage (same
run; the machine may be loaded), ID switches (extra track ids per ground-truth face over its life), and
frames until a face is first found after it becomes visible.
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
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "export"))

from shared_paths import shared_dir  # noqa: E402

W, H, FPS = 640, 480, 30.0
BOX_SIDE, BOX_DY = 0.84, 0.07
KINDS = ("pan", "zoom", "enter_leave", "shake", "two", "cut")
OUT = ROOT / "export" / "results" / "cadence_eval.json"


def gt_box(cx, cy, s, angle_deg):
    """BlazeFace's box for a FER crop of side s centred at (cx, cy), rotated by angle_deg."""
    a = math.radians(angle_deg)
    dx, dy = -math.sin(a) * BOX_DY * s, math.cos(a) * BOX_DY * s
    side = BOX_SIDE * s
    return (cx + dx - side / 2, cy + dy - side / 2, side, side)


def iou(a, b):
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    u = a[2] * a[3] + b[2] * b[3] - ix * iy
    return ix * iy / u if u > 0 else 0.0


def match_distance(box, g) -> float:
    """<= 1 when ``box`` matches ground-truth box ``g``: centre distance / (0.25 * FER side), inf when the
    width ratio is outside 0.6-1.6."""
    r = box[2] / g[2]
    if not (0.6 <= r <= 1.6):
        return math.inf
    d = math.hypot(box[0] + box[2] / 2 - g[0] - g[2] / 2, box[1] + box[3] / 2 - g[1] - g[3] / 2)
    return d / (0.25 * g[2] / BOX_SIDE)


def inside(b):
    ix = max(0.0, min(b[0] + b[2], W) - max(b[0], 0.0))
    iy = max(0.0, min(b[1] + b[3], H) - max(b[1], 0.0))
    return ix * iy / (b[2] * b[3])


def background(rng):
    return (rng.integers(90, 150) + rng.integers(0, 24, (H, W, 1))).astype(np.uint8).repeat(3, 2)


def paste(frame, img48, cx, cy, size, angle_deg, noise=None):
    """Paste a 48x48 face scaled to ``size`` px, rotated about its centre, centred at (cx, cy) (in place)."""
    import cv2
    a = math.radians(angle_deg)
    n = max(8, int(round(size)))
    face = cv2.resize(img48, (n, n), interpolation=cv2.INTER_CUBIC)  # bicubic upscale, as tests/test_detect.py
    if noise is not None:  # sensor noise on the face too (the background variants carry their own)
        face = np.clip(face.astype(np.int16) + noise[:n, :n, 0], 0, 255).astype(np.uint8)
    k = size / n
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]) * k
    # continuous coords: p_frame = R (p_face - (n/2, n/2)) + (cx, cy); index convention (pixel centres at +0.5)
    t = np.array([cx, cy]) - R @ np.array([n / 2, n / 2]) + R @ [0.5, 0.5] - 0.5
    # render only the face's bounding region of the frame (much cheaper than the whole frame)
    r = int(math.ceil(size * 0.75)) + 2
    x0, y0 = max(0, int(cx) - r), max(0, int(cy) - r)
    x1, y1 = min(W, int(cx) + r), min(H, int(cy) + r)
    if x1 <= x0 or y1 <= y0:
        return
    M = np.concatenate([R, (t - [x0, y0])[:, None]], 1)
    region = np.ascontiguousarray(frame[y0:y1, x0:x1, 0])  # the frames are grey (B = G = R)
    # BORDER_TRANSPARENT: only pixels inside the warped face are written; bilinear (rotation, sub-pixel shift)
    cv2.warpAffine(face, M, (x1 - x0, y1 - y0), dst=region, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    frame[y0:y1, x0:x1] = region[:, :, None]


def make_clip(kind: str, images: np.ndarray, rng, n_frames: int = 90):
    """(list of per-frame face states [(face_key, cx, cy, size, angle)], background per frame index fn,
    image per face_key). Frames are rendered lazily by render()."""
    ims = {}
    faces = []  # per face: list over frames of (cx, cy, size, angle) or None
    cut_at = None
    f = np.arange(n_frames, dtype=np.float64)
    if kind == "pan":
        s = rng.uniform(120, 220)
        v = rng.uniform(2, 8) * np.array([math.cos(th := rng.uniform(0, 2 * math.pi)), math.sin(th)])
        c0 = np.array([W / 2, H / 2]) - v * n_frames / 2
        faces.append([(c0[0] + v[0] * i, c0[1] + v[1] * i, s, 0.0) for i in f])
    elif kind == "zoom":
        s0, s1 = rng.uniform(110, 170), 0.0
        s1 = s0 * rng.choice([rng.uniform(0.6, 0.8), rng.uniform(1.3, 1.6)])
        v = rng.uniform(-2, 2, 2)
        faces.append([(W / 2 + v[0] * (i - n_frames / 2), H / 2 + v[1] * (i - n_frames / 2),
                       s0 + (s1 - s0) * i / (n_frames - 1), 0.0) for i in f])
    elif kind == "enter_leave":
        s = rng.uniform(110, 190)
        speed = rng.uniform(4, 12)
        y = rng.uniform(s, H - s)
        x0 = -s * 0.6
        sign = rng.choice([-1, 1])
        xs = x0 + speed * f
        if sign < 0:
            xs = W - xs
        faces.append([(xs[i], y + 10 * math.sin(i / 9), s, 0.0) for i in range(n_frames)])
    elif kind == "shake":
        s = rng.uniform(130, 220)
        amp, per = rng.uniform(15, 40), rng.uniform(0.7, 2.0) * FPS
        ang = rng.uniform(0, 10)
        cx, cy = rng.uniform(s, W - s), rng.uniform(s * 0.8, H - s * 0.8)
        faces.append([(cx + amp * math.sin(2 * math.pi * i / per), cy + 0.3 * amp * math.sin(4 * math.pi * i / per),
                       s, ang * math.sin(2 * math.pi * i / per + 1.0)) for i in f])
    elif kind == "two":
        s1, s2 = rng.uniform(110, 160), rng.uniform(110, 160)
        cx1 = rng.uniform(s1, W / 2 - 20)
        cy1 = rng.uniform(s1 * 0.8, H - s1 * 0.8)
        faces.append([(cx1 + 8 * math.sin(i / 7), cy1 + 5 * math.cos(i / 11), s1, 0.0) for i in f])
        start = n_frames // 3
        speed = rng.uniform(4, 9)
        y2 = rng.uniform(s2 * 0.8, H - s2 * 0.8)
        faces.append([None if i < start else (W + s2 * 0.6 - speed * (i - start), y2, s2, 0.0) for i in range(n_frames)])
    elif kind == "cut":
        s = rng.uniform(120, 200)
        cut_at = n_frames // 2
        a = (rng.uniform(s, W / 2), rng.uniform(s * 0.8, H - s * 0.8))
        b = (rng.uniform(W / 2, W - s), rng.uniform(s * 0.8, H - s * 0.8))
        faces.append([(a[0] + 2 * i, a[1], s, 0.0) if i < cut_at else (b[0] - 2 * (i - cut_at), b[1], s * 0.9, 0.0)
                      for i in range(n_frames)])
    else:
        raise ValueError(kind)
    for k in range(len(faces)):
        ims[k] = images[rng.integers(len(images))]
    seeds = (int(rng.integers(1 << 30)), int(rng.integers(1 << 30)))
    return {"kind": kind, "faces": faces, "images": ims, "cut_at": cut_at, "seeds": seeds, "n": n_frames}


def frames_of(clip):
    """Yield (frame uint8 [480, 640, 3], ground-truth boxes of the visible faces as {face_key: box})."""
    noise_rng = np.random.default_rng(clip["seeds"][1])
    noise = [noise_rng.integers(-3, 4, (H, W, 1), dtype=np.int16) for _ in range(5)]  # cycled sensor noise

    def noisy(b):
        return [np.clip(b.astype(np.int16) + n, 0, 255).astype(np.uint8) for n in noise]
    bg = [noisy(background(np.random.default_rng(clip["seeds"][0])))]
    if clip["cut_at"] is not None:
        bg.append(noisy(background(np.random.default_rng(clip["seeds"][0] + 1))))
    for i in range(clip["n"]):
        b = bg[1] if clip["cut_at"] is not None and i >= clip["cut_at"] else bg[0]
        fr = b[i % len(noise)].copy()
        gts = {}
        for k, traj in enumerate(clip["faces"]):
            st = traj[i]
            if st is None:
                continue
            cx, cy, s, ang = st
            paste(fr, clip["images"][k], cx, cy, s, ang, noise[i % len(noise)])
            g = gt_box(cx, cy, s, ang)
            if inside(g) >= 0.9:
                gts[k] = g
        yield fr, gts


def build_clips(images, n_clips: int, seed: int):
    rng = np.random.default_rng(seed)
    return [make_clip(KINDS[i % len(KINDS)], images, rng) for i in range(n_clips)]


def evaluate(analyzer, clips, frames_cache=None):
    """Run FaceAnalyzer.locate over every clip with a fresh tracker; returns the metrics dict."""
    found = total = dets = n_frames = 0
    ms = []
    switches = 0
    delays = []
    by_kind = {}
    for ci, clip in enumerate(clips):
        tracker = analyzer.new_tracker()
        ids = {}
        first_seen = {}
        first_found = {}
        frames = frames_cache[ci] if frames_cache is not None else frames_of(clip)
        for i, (fr, gts) in enumerate(frames):
            t0 = time.perf_counter_ns()
            loc = analyzer.locate(fr, t=i / FPS, tracker=tracker)
            ms.append((time.perf_counter_ns() - t0) / 1e6)
            dets += loc.detected
            n_frames += 1
            kd = by_kind.setdefault(clip["kind"], [0, 0])
            for k, g in gts.items():
                total += 1
                kd[1] += 1
                first_seen.setdefault(k, i)
                best, bj = math.inf, -1
                for j in range(len(loc.boxes)):
                    v = match_distance(loc.boxes[j], g)
                    if v < best:
                        best, bj = v, j
                if best <= 1.0:
                    found += 1
                    kd[0] += 1
                    first_found.setdefault(k, i)
                    ids.setdefault(k, set()).add(loc.track_ids[bj])
        switches += sum(len(v) - 1 for v in ids.values())
        delays += [first_found[k] - first_seen[k] for k in first_found]
    return {"recall": found / max(total, 1), "gt_faces": total, "found": found, "frames": n_frames,
            "detections_per_frame": dets / max(n_frames, 1), "locate_ms_median": float(np.median(ms)),
            "locate_ms_mean": float(np.mean(ms)), "id_switches": switches,
            "first_found_delay_frames_mean": float(np.mean(delays)) if delays else None,
            "first_found_delay_frames_max": int(max(delays)) if delays else None,
            "recall_by_kind": {k: v[0] / max(v[1], 1) for k, v in sorted(by_kind.items())}}


def write_report(path, report: dict) -> pathlib.Path:
    """Write ``report`` as indented JSON to ``path`` (folders created) through a temporary file beside it,
    renamed into place, so a reader never sees half a report; prints and returns the path."""
    p = pathlib.Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(p)
    print(f"wrote {p}")
    return p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", default="1,3,5,8,12", help="detect_every values to try (template ROI, confidence 0.5)")
    ap.add_argument("--compare-at", type=int, default=5, help="detect_every at which the ROI modes are compared")
    ap.add_argument("--roi", default="template,predict,detector", help="re-localisation modes to compare")
    ap.add_argument("--min-confidence", default="0.3,0.5,0.7", help="roi_min_confidence values (template mode)")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    import cv2
    from emoedge.faces import FaceAnalyzer, FaceAnalyzerOptions
    cv2.setNumThreads(1)
    images = np.load(shared_dir() / "data" / "faces" / "fer2013_val.npz")["images"]
    clips = build_clips(images, args.clips, args.seed)
    print(f"{len(clips)} clips, {sum(c['n'] for c in clips)} frames", flush=True)
    cache = None  # rendered again for each config (deterministic; ~2 GB if kept)
    base = FaceAnalyzer(FaceAnalyzerOptions(detect_every=1))
    configs = [{"detect_every": 1, "roi": "template", "roi_min_confidence": 0.5}]
    for n in (int(x) for x in args.every.split(",")):
        if n > 1:
            configs.append({"detect_every": n, "roi": "template", "roi_min_confidence": 0.5})
    n0 = args.compare_at
    for r in args.roi.split(","):
        for mc in ([float(x) for x in args.min_confidence.split(",")] if r == "template" else [0.5]):
            c = {"detect_every": n0, "roi": r, "roi_min_confidence": mc}
            if c not in configs:
                configs.append(c)
    rows = []
    for cfg in configs:
        fa = FaceAnalyzer(FaceAnalyzerOptions(**cfg), manifest=base.manifest)
        fa.detector.session = base.detector.session  # same weights; one session
        m = evaluate(fa, clips, cache)
        rows.append({"config": cfg, **m})
        print(f"N={cfg['detect_every']:>2} roi={cfg['roi']:<9} minc={cfg['roi_min_confidence']:.2f}  recall {m['recall']:.4f}  "
              f"det/frame {m['detections_per_frame']:.3f}  locate p50 {m['locate_ms_median']:.3f} ms mean "
              f"{m['locate_ms_mean']:.3f}  id switches {m['id_switches']}  first-found delay mean "
              f"{m['first_found_delay_frames_mean']} max {m['first_found_delay_frames_max']}  "
              f"by kind {json.dumps({k: round(v, 3) for k, v in m['recall_by_kind'].items()})}", flush=True)
    ref = rows[0]["recall"]
    for r in rows:
        r["recall_minus_every_frame_points"] = 100 * (r["recall"] - ref)
    out = {"clips": len(clips), "frames": rows[0]["frames"], "seed": args.seed, "fps": FPS,
           "data": "FER2013 PublicTest (shared/data/faces/fer2013_val.npz), pasted into 640x480 frames",
           "kinds": list(KINDS), "rows": rows,
           "command": "python export/cadence_eval.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    write_report(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
