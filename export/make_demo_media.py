"""Make the bundled demo media in emoedge/samples/ (synthetic clip, honestly labelled):

* demo.mp4: 9 s, 640x480, 15 fps H.264 + 16 kHz mono AAC. 0-1 s: a title card (no face); 1-9 s: a slow
  zoom and pan over the public-domain NASA portrait of astronaut Eileen Collins (the `astronaut` image that
  ships in the scikit-image wheel). The audio track is speech synthesized with espeak-ng saying the lines of
  demo.txt at their times.
* demo.txt: the same lines with their times (``SECONDS<TAB>TEXT``) for the text modality.

Usage (needs espeak-ng on PATH, PyAV, soxr, OpenCV):

    pip download scikit-image==0.26.0 --no-deps -d /tmp/skimg
    python export/make_demo_media.py --astronaut /tmp/skimg/scikit_image-0.26.0-*.whl

``--astronaut`` takes the wheel (the PNG is read from skimage/data/astronaut.png inside it) or a PNG path;
without it, skimage.data.astronaut() is used when scikit-image is installed. Output is deterministic up to
the encoder version; sha256 of the inputs and outputs are printed.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import pathlib
import subprocess
import tempfile
import wave
import zipfile
from fractions import Fraction

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[1] / "emoedge" / "samples"
LINES = [(1.0, "Hello, and welcome to the emoedge demo."),
         (5.0, "I am really happy to see you today!")]
W, H, FPS, DUR, SR = 640, 480, 15, 9.0, 16000


def load_astronaut(arg):
    import cv2
    if arg:
        paths = glob.glob(arg)
        p = pathlib.Path(paths[0] if paths else arg)
        if p.suffix == ".whl":
            with zipfile.ZipFile(p) as z:
                data = z.read("skimage/data/astronaut.png")
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        else:
            data = p.read_bytes()
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        print(f"astronaut from {p} (png sha256 {hashlib.sha256(data).hexdigest()[:16]})")
        return img
    from skimage import data as skd  # optional
    return np.ascontiguousarray(skd.astronaut()[:, :, ::-1])


def speech(text, speed=150, pitch=50):
    import soxr
    with tempfile.TemporaryDirectory() as d:
        p = pathlib.Path(d) / "s.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", str(speed), "-p", str(pitch), "-w", str(p), text], check=True)
        with wave.open(str(p)) as w:
            sr = w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
    return soxr.resample(x, sr, SR).astype(np.float32)


def frame_at(img, t):
    import cv2
    if t < 1.0:
        f = np.full((H, W, 3), 24, np.uint8)
        cv2.putText(f, "emoedge demo", (150, 220), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (230, 230, 230), 2, cv2.LINE_AA)
        cv2.putText(f, "synthetic clip: NASA public-domain photo + espeak-ng speech", (40, 280),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (180, 180, 180), 1, cv2.LINE_AA)
        return f
    u = (t - 1.0) / (DUR - 1.0)                     # 0..1 over the portrait segment
    cw = 420 - 120 * u                              # crop width in source pixels: zoom in
    ch = cw * H / W
    cx = 215 + 25 * np.sin(2 * np.pi * u)           # gentle horizontal pan around the face
    cy = max(ch / 2, 120)
    x0, y0 = cx - cw / 2, cy - ch / 2
    m = np.array([[W / cw, 0, -x0 * W / cw], [0, H / ch, -y0 * H / ch]], np.float32)
    return cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def main():
    import av
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--astronaut", help="scikit-image wheel or astronaut.png")
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    img = load_astronaut(a.astronaut)
    audio = np.zeros(int(DUR * SR), np.float32)
    for t, text in LINES:
        s = speech(text)
        i = int(t * SR)
        audio[i:i + s.size] += s[: audio.size - i]
    audio = np.clip(audio * 0.9, -1, 1)
    path = out / "demo.mp4"
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.options = {"crf": "26", "preset": "slow", "tune": "stillimage"}
        as_ = c.add_stream("aac", rate=SR)
        as_.layout = "mono"
        as_.bit_rate = 48000
        for i in range(int(DUR * FPS)):
            fr = av.VideoFrame.from_ndarray(frame_at(img, i / FPS), format="bgr24")
            fr.pts = i
            fr.time_base = Fraction(1, FPS)
            for p in vs.encode(fr):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        step = 1024
        for k in range(0, audio.size, step):
            af = av.AudioFrame.from_ndarray(audio[None, k:k + step], format="flt", layout="mono")
            af.sample_rate, af.pts, af.time_base = SR, k, Fraction(1, SR)
            for p in as_.encode(af):
                c.mux(p)
        for p in as_.encode(None):
            c.mux(p)
    (out / "demo.txt").write_text("".join(f"{t}\t{text}\n" for t, text in LINES), encoding="utf-8")
    for f in ("demo.mp4", "demo.txt"):
        b = (out / f).read_bytes()
        print(f"{f}: {len(b)} bytes, sha256 {hashlib.sha256(b).hexdigest()}")


if __name__ == "__main__":
    main()
