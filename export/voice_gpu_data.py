"""Pack the speech corpora for a device run (the device tool carries at most 64 MiB per call, the tracked
tree included), and unpack them there.

    python export/voice_gpu_data.py pack .gpu/voice           # here: part files of <= --part-mb MB
    python export/voice_gpu_data.py unpack .gpu/voice DEST    # there: DEST/data/speech/*.npz (EMOEDGE_SHARED=DEST)

The audio (int16 PCM) is compressed losslessly (LZMA2 after a 2-byte delta filter, about 0.6 of the npz
size for RAVDESS); every other array of each corpus file is kept as is, so the unpacked files load exactly
like the originals (verified by the sha256 of the audio bytes recorded at pack time).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from shared_paths import shared_dir  # noqa: E402

FILES = ("ravdess_speech_actors01-20_16k.npz", "emodb_speakers_no15-16_16k.npz")
FILTERS = [{"id": lzma.FILTER_DELTA, "dist": 2}, {"id": lzma.FILTER_LZMA2, "preset": 6}]


def pack(out: pathlib.Path, part_mb: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    blob = io.BytesIO()
    index = []
    for name in FILES:
        with np.load(shared_dir() / "data" / "speech" / name) as z:
            arrays = {k: z[k] for k in z.files}
        audio = arrays.pop("audio")
        meta = io.BytesIO()
        np.savez(meta, **arrays)
        comp = lzma.compress(audio.astype("<i2").tobytes(), format=lzma.FORMAT_XZ, filters=FILTERS)
        index.append({"name": name, "meta": [blob.tell(), len(meta.getvalue())]})
        blob.write(meta.getvalue())
        index[-1]["audio"] = [blob.tell(), len(comp)]
        index[-1]["audio_sha256"] = hashlib.sha256(audio.astype("<i2").tobytes()).hexdigest()
        blob.write(comp)
        print(f"{name}: audio {audio.nbytes / 1e6:.1f} MB -> {len(comp) / 1e6:.1f} MB", flush=True)
    data = blob.getvalue()
    step = int(part_mb * 1e6)
    parts = [data[i:i + step] for i in range(0, len(data), step)]
    for i, p in enumerate(parts):
        (out / f"part{i}").write_bytes(p)
    (out / "index.json").write_text(json.dumps({"files": index, "parts": len(parts), "bytes": len(data)}))
    print(f"{len(data) / 1e6:.1f} MB in {len(parts)} parts under {out}")


def unpack(src: pathlib.Path, dest: pathlib.Path) -> None:
    idx = json.loads((src / "index.json").read_text())
    missing = [i for i in range(idx["parts"]) if not (src / f"part{i}").is_file()]
    if missing:
        raise SystemExit(f"{src}: part(s) {missing} missing: carry every part file (one per device call)")
    data = b"".join((src / f"part{i}").read_bytes() for i in range(idx["parts"]))
    if len(data) != idx["bytes"]:
        raise SystemExit(f"{src}: {len(data)} bytes in the parts, {idx['bytes']} expected: a part is truncated")
    d = dest / "data" / "speech"
    d.mkdir(parents=True, exist_ok=True)
    for f in idx["files"]:
        o, n = f["meta"]
        with np.load(io.BytesIO(data[o:o + n])) as z:
            arrays = {k: z[k] for k in z.files}
        o, n = f["audio"]
        raw = lzma.decompress(data[o:o + n])
        if hashlib.sha256(raw).hexdigest() != f["audio_sha256"]:
            raise SystemExit(f"{f['name']}: audio checksum mismatch")
        arrays["audio"] = np.frombuffer(raw, "<i2").astype(np.int16)
        np.savez(d / f["name"], **arrays)
        print(f"unpacked {d / f['name']}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=("pack", "unpack"))
    ap.add_argument("src_or_out")
    ap.add_argument("dest", nargs="?")
    ap.add_argument("--part-mb", type=float, default=24.0)
    a = ap.parse_args(argv)
    if a.command == "pack":
        pack(pathlib.Path(a.src_or_out), a.part_mb)
    else:
        unpack(pathlib.Path(a.src_or_out), pathlib.Path(a.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
