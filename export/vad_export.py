"""Bundle Silero VAD v6 (MIT) from the pinned PyPI wheel into emoedge/models.

    /work/venv/bin/python export/vad_export.py [--cache /work/cache/silero]

Steps: ``pip download silero-vad==6.2.3 --no-deps`` (reused when the wheel is already cached), check the
wheel's sha256, extract ``silero_vad/data/silero_vad.onnx`` and the wheel's LICENSE, verify the streaming
contract on the real model inputs (input [B, 64 + 512] float32 at 16 kHz, state [2, B, 128], sr int64
scalar), copy both into emoedge/models and write the manifest entry ``silero-vad`` (task ``vad``).
Never imports the silero_vad package (it pulls torch).
"""
from __future__ import annotations

import argparse
import hashlib
import pathlib
import subprocess
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PACKAGE = "silero-vad==6.2.3"
WHEEL = "silero_vad-6.2.3-py3-none-any.whl"
WHEEL_SHA256 = "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"
MEMBER = "silero_vad/data/silero_vad.onnx"
MEMBER_SHA256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
LICENSE_MEMBER = "silero_vad-6.2.3.dist-info/licenses/LICENSE"
OUT_NAME = "silero_vad.onnx"
LICENSE_NAME = "silero_vad.LICENSE.txt"
CONTEXT = 64      # samples of the previous chunk prepended at 16 kHz
CHUNK = 512       # new samples per call at 16 kHz (32 ms)


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default="/work/cache/silero", help="folder for the downloaded wheel")
    ap.add_argument("--manifest", default=None, help="manifest.json to update (default: the bundled one)")
    args = ap.parse_args(argv)
    cache = pathlib.Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    whl = cache / WHEEL
    if not whl.is_file():
        subprocess.check_call([sys.executable, "-m", "pip", "download", PACKAGE, "--no-deps", "-d", str(cache)])
    wheel_sha = sha256_bytes(whl.read_bytes())
    print(f"wheel {whl.name} sha256 {wheel_sha}")
    if wheel_sha != WHEEL_SHA256:
        raise SystemExit(f"wheel sha256 {wheel_sha} != pinned {WHEEL_SHA256}; delete {whl} and retry")
    with zipfile.ZipFile(whl) as z:
        onnx_bytes = z.read(MEMBER)
        lic = z.read(LICENSE_MEMBER).decode("utf-8")
    file_sha = sha256_bytes(onnx_bytes)
    print(f"{MEMBER} sha256 {file_sha} ({len(onnx_bytes)} bytes)")
    if file_sha != MEMBER_SHA256:
        raise SystemExit(f"{MEMBER} sha256 {file_sha} != pinned {MEMBER_SHA256}")
    if "MIT License" not in lic:
        raise SystemExit("unexpected licence text in the wheel; refusing to bundle")

    out_dir = ROOT / "emoedge" / "models"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / OUT_NAME).write_bytes(onnx_bytes)
    (out_dir / LICENSE_NAME).write_text(
        f"emoedge/models/{OUT_NAME} is silero_vad/data/silero_vad.onnx from the PyPI wheel {WHEEL}\n"
        f"(wheel sha256 {wheel_sha}, file sha256 {file_sha}), unchanged. Its licence:\n\n{lic}")

    # verify the contract on the actual model
    import numpy as np
    import onnxruntime as ort
    s = ort.InferenceSession(str(out_dir / OUT_NAME), providers=["CPUExecutionProvider"])
    ins = {i.name: (i.shape, i.type) for i in s.get_inputs()}
    outs = [o.name for o in s.get_outputs()]
    print("inputs", ins, "outputs", outs)
    assert set(ins) == {"input", "state", "sr"}, ins
    assert ins["state"][0][0] == 2 and ins["state"][0][2] == 128, ins
    assert ins["sr"][1] == "tensor(int64)" and ins["sr"][0] == [], ins
    state = np.zeros((2, 1, 128), np.float32)
    p, st = s.run(None, {"input": np.zeros((1, CONTEXT + CHUNK), np.float32), "state": state,
                         "sr": np.array(16000, np.int64)})
    assert p.shape == (1, 1) and st.shape == (2, 1, 128), (p.shape, st.shape)

    from emoedge.manifest import update_entry
    update_entry("silero-vad", {
        "file": OUT_NAME,
        "task": "vad",
        "family": "silero-vad",
        "precision": "fp32",
        "licence": "MIT (Silero Team), see " + LICENSE_NAME,
        "source": {"package": PACKAGE, "wheel_sha256": wheel_sha, "member": MEMBER, "member_sha256": file_sha},
        "input": {"input": "float32 [B, 576]: 64 context samples (last 64 of the previous call, zeros at start) "
                           "+ 512 new samples, 16 kHz, range [-1, 1]",
                  "state": "float32 [2, B, 128], zeros at start, carried by the caller (the stream)",
                  "sr": "int64 scalar 16000"},
        "output": {"output": "float32 [B, 1] speech probability", "stateN": "float32 [2, B, 128] next state"},
        "sample_rate": 16000, "chunk_samples": CHUNK, "context_samples": CONTEXT,
        "threshold": 0.5,
        "made_by": "python export/vad_export.py",
    }, path=args.manifest, default_for="vad")
    print("wrote", out_dir / OUT_NAME, "and manifest entry silero-vad")
    return 0


if __name__ == "__main__":
    sys.exit(main())
