#!/usr/bin/env python
"""Prepare the payload a GPU session carries to a machine that cannot download anything (run HERE).

    python benchmarks/gpu_prepare.py [--data ../shared/data] [--limit-mib 64]

Run it in the checkout the device tool sends (the GPU session's own), after its last change to tracked
files: the part size is computed from that working tree's size.

Writes, under the git-ignored folder ``.gpu/`` of this checkout:

* ``.gpu/cache/``: the wheels, downloaded once with pip (exact pins, sha256 checked): onnxruntime-gpu 1.31.1
  (cp312, manylinux_2_28, 255.6 MB; its CUDA 13 / cuDNN 9 libraries are already on the GPU machine) and
  soxr (emoedge's resampler). PyAV is NOT carried (35 MB): the demo clip travels decoded instead.
* ``.gpu/payload.tar``: those wheels + the dev data gpu_check reads (FER2013 PublicTest, the held-out
  RAVDESS actors of the voice entries, CARER val) + ``demo_bundle.npz`` (the demo clip's frames as JPEG
  q=95 and its audio chunks, decoded here with emoedge's own VideoFileSource).
* ``.gpu/partNN/payload.part``: the payload split so that each device call (the working tree travels with
  every call) stays under the 64 MiB limit, and ``.gpu/partNN/payload.sha256`` beside the last one.
* ``.gpu/PLAN.md``: the exact device calls, in order (see benchmarks/gpu_device_run.sh).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import pathlib
import shutil
import subprocess
import sys
import tarfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
GPU = ROOT / ".gpu"
WHEELS = {  # name==version: sha256 of the cp312 manylinux x86-64 wheel (checked after download)
    "onnxruntime-gpu==1.31.1": "05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7",
    "soxr==1.1.0": "3b033078e86f3c4a658e5697fac8995764fad9e799563616b630136b613167f1",
}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def download() -> list:
    cache = GPU / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for spec, want in WHEELS.items():
        name = spec.split("==")[0].replace("-", "_")
        have = [p for p in cache.glob(f"{name}-*.whl") if sha256(p) == want]
        if not have:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
                   "--implementation", "cp", "-d", str(cache), spec] + sum((["--platform", p] for p in PLATFORMS), [])
            subprocess.run(cmd, check=True)
            have = [p for p in cache.glob(f"{name}-*.whl") if sha256(p) == want]
        if not have:
            raise SystemExit(f"{spec}: no downloaded wheel with sha256 {want}")
        out.append(have[0])
    return out


def tree_bytes() -> int:
    """Bytes of what the device tool sends with every call: tracked + untracked-not-ignored files."""
    names = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True).stdout.split(b"\0")
    return sum((ROOT / n.decode()).stat().st_size for n in names if n and (ROOT / n.decode()).is_file())


def voice_heldout() -> dict:
    """{file: sorted speakers} named in the voice entries' metrics (what gpu_check reads)."""
    from emoedge.manifest import load_manifest
    m = load_manifest()
    sets: dict = {}
    for n in m.names():
        e = m.entry(n)
        if e.get("task") != "voice":
            continue
        for v in (e.get("metrics") or {}).values():
            if isinstance(v, dict) and v.get("file", "").startswith("ravdess") and v.get("speakers"):
                sets.setdefault(v["file"], set()).update(int(s) for s in v["speakers"])
    return {k: sorted(v) for k, v in sets.items()}


def subset_speech(src: pathlib.Path, speakers) -> bytes:
    z = np.load(src, allow_pickle=False)
    d = {k: z[k] for k in z.files}  # each z[k] decompresses again: read every array once
    keep = np.flatnonzero(np.isin(d["speaker"], speakers))
    offs, full = d["offsets"], d["audio"]
    audio = np.concatenate([full[offs[i]:offs[i + 1]] for i in keep])
    lens = np.array([offs[i + 1] - offs[i] for i in keep], np.int64)
    out = {"audio": audio, "offsets": np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)}
    for k in d:
        if k in ("audio", "offsets"):
            continue
        a = d[k]
        out[k] = a[keep] if a.ndim and len(a) == len(offs) - 1 else a
    buf = io.BytesIO()
    np.savez_compressed(buf, **out)
    return buf.getvalue()


def demo_bundle() -> bytes:
    """The demo clip decoded with emoedge's VideoFileSource: frames as JPEG (q=95), audio chunks as int16."""
    import cv2
    from emoedge.bench.e2e import SAMPLES
    from emoedge.sources import VideoFileSource
    frames, ft, pcm, at, asr = [], [], [], [], []
    with VideoFileSource(SAMPLES / "demo.mp4") as src:
        for it in src.items():
            if it.kind == "video":
                ok, jpg = cv2.imencode(".jpg", it.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
                frames.append(np.frombuffer(jpg.tobytes(), np.uint8))
                ft.append(it.t)
            elif it.kind == "audio":
                pcm.append(np.clip(np.round(np.asarray(it.pcm, np.float32) * 32767), -32768, 32767).astype(np.int16))
                at.append(it.t)
                asr.append(it.sample_rate)
    lens = np.array([len(f) for f in frames], np.int64)
    alen = np.array([len(p) for p in pcm], np.int64)
    buf = io.BytesIO()
    np.savez(buf, jpeg=np.concatenate(frames), jpeg_offsets=np.concatenate([[0], np.cumsum(lens)]), frame_t=np.array(ft),
             pcm=np.concatenate(pcm), pcm_offsets=np.concatenate([[0], np.cumsum(alen)]), audio_t=np.array(at),
             audio_rate=np.array(asr, np.int64))
    return buf.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--limit-mib", type=float, default=64.0, help="the device tool's per-call limit")
    ap.add_argument("--margin-mib", type=float, default=3.0, help="kept free for files added before the GPU run")
    a = ap.parse_args(argv)
    data = pathlib.Path(a.data)
    wheels = download()
    GPU.mkdir(exist_ok=True)
    for old in GPU.glob("part*"):
        shutil.rmtree(old)
    payload = GPU / "payload.tar"
    members = []
    with tarfile.open(payload, "w") as tar:
        def add(name, blob=None, path=None):
            if path is not None:
                tar.add(str(path), arcname=name)
            else:
                ti = tarfile.TarInfo(name)
                ti.size = len(blob)
                tar.addfile(ti, io.BytesIO(blob))
            members.append(name)
        for w in wheels:
            add(f"wheels/{w.name}", path=w)
        add("data/faces/fer2013_val.npz", path=data / "faces" / "fer2013_val.npz")
        for file, spk in voice_heldout().items():
            add(f"data/speech/{file}", subset_speech(data / "speech" / file, spk))
        add("data/text/carer_emotion/val.txt", path=data / "text" / "carer_emotion" / "val.txt")
        add("demo_bundle.npz", demo_bundle())
    total, digest = payload.stat().st_size, sha256(payload)
    tree = tree_bytes()
    part = int((a.limit_mib - a.margin_mib) * 2**20) - tree
    if part < 4 * 2**20:
        raise SystemExit(f"the working tree ({tree / 2**20:.1f} MiB) leaves no room for payload parts under {a.limit_mib} MiB")
    n = -(-total // part)
    with open(payload, "rb") as f:
        for i in range(1, n + 1):
            d = GPU / f"part{i:02d}"
            d.mkdir()
            (d / "payload.part").write_bytes(f.read(part))
    last = GPU / f"part{n:02d}"
    (last / "payload.sha256").write_text(json.dumps({"sha256": digest, "bytes": total, "parts": n, "members": members}) + "\n")
    calls = [f"{i}. run(command='bash benchmarks/gpu_device_run.sh stage {i}', carry=['.gpu/part{i:02d}'], timeout_s=120)"
             for i in range(1, n)]
    calls.append(f"{n}. run(command='bash benchmarks/gpu_device_run.sh stage {n} && bash benchmarks/gpu_device_run.sh check', "
                 f"carry=['.gpu/part{n:02d}'], timeout_s=540)")
    plan = "\n".join([
        "# GPU run plan (made by benchmarks/gpu_prepare.py)", "",
        f"Working tree sent with every call: {tree / 2**20:.1f} MiB. Payload: {total / 2**20:.1f} MiB in {n} parts of "
        f"<= {part / 2**20:.1f} MiB (sha256 {digest}).", "",
        "Make the calls back to back: the machine stays warm only ~30 s after a call, and a fresh machine has none "
        "of the staged parts (then start again at call 1). Copy $OUT/gpu_h200.json and .md from the last call into "
        "benchmarks/results/.", ""] + calls) + "\n"
    (GPU / "PLAN.md").write_text(plan)
    print(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
