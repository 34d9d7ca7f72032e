"""The :class:`Engine`: the model components shared by all streams (face, voice, text; thread-safe) and
their configuration, with no per-stream state. :meth:`Engine.stream` makes a :class:`~emoedge.stream.Stream`
per source; :meth:`Engine.run` drives media sources through one (see :mod:`emoedge.runner`).

Example::

    from emoedge import Engine
    engine = Engine()                                   # the manifest's default models, CPU, 1 thread
    with engine.stream() as s:
        for ev in s.push_frame(frame_bgr, t=0.0):       # also push_audio(pcm, 16000, t), push_text(str, t)
            print(ev.t, ev.label, ev.confidence)
    for ev in engine.run(video="clip.mp4"):             # file mode: every frame, deterministic
        print(ev.to_json())
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

from .components import FaceComponent, TextComponent, VoiceComponent, build_components
from .errors import EmoEdgeError, InvalidInputError
from .manifest import Manifest, load_manifest
from .options import MODEL_PRECISIONS, RunningMode, RuntimeOptions
from .runner import Run, open_sources
from .stream import Stream

if TYPE_CHECKING:  # pragma: no cover
    import os

    from .faces import FaceAnalyzerOptions
    from .fusion import FusionOptions
    from .scheduler import FrameScheduler
    from .voice import VoiceOptions

__all__ = ["Engine", "Run"]


class Engine:
    """Holds the components shared by all streams (thread-safe) and no per-stream state.

    Keyword-only. ``models``: task -> manifest entry name (e.g. ``{"face_expression": "face-expr-fp32"}``),
    default: the manifest's defaults. ``precision``: model variant 'int8' | 'fp32' | 'fp16' | None (each
    model's default; a family without it keeps its default, with a warning and a note in ``info()``).
    'fp16' (the face-expression, voice and text FP16 variants, FP32 at the graph boundary) is for the GPU
    backends; with backend='cpu' it raises InvalidInputError.
    ``backend`` ('cpu' | 'cuda' | 'tensorrt' | 'triton') and ``threads`` (onnxruntime intra-op threads per
    session); for 'triton' also ``triton_url`` (gRPC host:port, default 127.0.0.1:8001) and ``triton_timeout_s``
    (deadline of every call; a down server raises BackendUnavailableError, never hangs); or
    ``runtime``: a :class:`~emoedge.options.RuntimeOptions` (also device and GPU precision), passed unchanged
    to every component. ``manifest``: a manifest.json path or a :class:`~emoedge.manifest.Manifest`
    (None: the bundled one), loaded once and shared by the components. ``face`` / ``voice`` / ``text``:
    None loads the default component, False disables the modality, or pass an object implementing
    :class:`~emoedge.components.FaceComponent` / ``VoiceComponent`` / ``TextComponent`` (custom models,
    tests). ``face_options``: FaceAnalyzerOptions of the default face component (the engine's runtime
    and precision apply to it too); ``voice_options``: VoiceOptions of every stream's voice stream.
    ``skip_missing``: a default modality whose pipeline or model is not installed is left out (noted in
    ``info()['notes']``) instead of raising."""

    def __init__(self, *, models: Optional[Dict[str, str]] = None, backend: Optional[str] = None,
                 precision: Optional[str] = None, threads: Optional[int] = None,
                 manifest: "Union[str, os.PathLike[str], Manifest, None]" = None, face: Any = None,
                 voice: Any = None, text: Any = None, face_options: "Optional[FaceAnalyzerOptions]" = None,
                 voice_options: "Optional[VoiceOptions]" = None, skip_missing: bool = False,
                 runtime: Optional[RuntimeOptions] = None, triton_url: Optional[str] = None,
                 triton_timeout_s: Optional[float] = None):
        if precision not in (None,) + MODEL_PRECISIONS:
            raise InvalidInputError(f"precision must be 'int8', 'fp32', 'fp16' or None, got {precision!r}")
        if runtime is None:
            tkw: Dict[str, Any] = {} if triton_url is None else {"triton_url": triton_url}
            if triton_timeout_s is not None:
                tkw["triton_timeout_s"] = triton_timeout_s
            runtime = RuntimeOptions(backend="cpu" if backend is None else backend, threads=1 if threads is None else threads,
                                     **tkw)
        elif (backend is not None and backend != runtime.backend) or (threads is not None and threads != runtime.threads) \
                or (triton_url is not None and triton_url != runtime.triton_url) \
                or (triton_timeout_s is not None and triton_timeout_s != runtime.triton_timeout_s):
            raise InvalidInputError(f"backend={backend!r}/threads={threads!r}/triton_url={triton_url!r} disagree with "
                                    f"runtime={runtime}; give them in one place")
        if precision == "fp16" and runtime.backend == "cpu":
            raise InvalidInputError(
                "precision='fp16' selects the FP16 model variants, which are made for GPUs (backend='cuda' or "
                "'tensorrt'). onnxruntime's CPU EP has no FP16 kernels for them on x86: it would cast every weight "
                "back to FP32 and run slower than the fp32 variant for the same result. On CPU use precision=None "
                "(the INT8 defaults), 'int8' or 'fp32'")
        self.runtime = runtime
        self.models = dict(models or {})
        self.precision = precision
        self.voice_options = voice_options
        self._closed = False
        t0 = time.perf_counter()
        self.manifest: Optional[Manifest] = None
        if face is None or voice is None or text is None or manifest is not None:
            self.manifest = load_manifest(manifest)  # once per engine; every component reads this one
        from .triton.client import engine_checks
        with engine_checks(runtime):   # backend 'triton': server live, then every missing model named at once
            c = build_components(runtime=runtime, manifest=self.manifest, models=self.models, precision=precision,
                                 face=face, voice=voice, text=text, face_options=face_options,
                                 skip_missing=skip_missing)
        self.face: Optional[FaceComponent] = c.face
        self.voice: Optional[VoiceComponent] = c.voice
        self.text: Optional[TextComponent] = c.text
        self.notes: List[str] = c.notes
        self.load_seconds = time.perf_counter() - t0

    @property
    def backend(self) -> str:
        return self.runtime.backend

    @property
    def threads(self) -> int:
        return self.runtime.threads

    @property
    def has_face(self) -> bool:
        return self.face is not None

    @property
    def has_voice(self) -> bool:
        return self.voice is not None

    @property
    def has_text(self) -> bool:
        return self.text is not None

    def fusion_options(self, **overrides: Any) -> "FusionOptions":
        """The FusionOptions streams get by default: each modality's fitted weight (and bias, if any) from
        the ``fusion`` block of its model's manifest entry (export/fusion_fit.py), the defaults elsewhere;
        ``overrides`` are FusionOptions fields that win."""
        from .fusion import FusionOptions
        entries = {m: getattr(c, "entry", None) for m, c in (("face", self.face), ("voice", self.voice),
                                                            ("text", self.text)) if c is not None}
        return FusionOptions.from_manifest({m: e for m, e in entries.items() if isinstance(e, dict)}, **overrides)

    def info(self) -> Dict[str, Any]:
        """What this engine runs: modalities, model names, backend, precision, threads, fusion weights."""
        d: Dict[str, Any] = {"backend": self.backend, "precision": self.precision, "threads": self.threads,
                             "modalities": [m for m, c in (("face", self.face), ("voice", self.voice),
                                                           ("text", self.text)) if c is not None],
                             "load_seconds": self.load_seconds, "notes": list(self.notes)}
        if self.backend == "triton":
            d["triton_url"] = self.runtime.triton_options().url
        for m, comp in (("face", self.face), ("voice", self.voice), ("text", self.text)):
            if comp is not None:
                d[f"{m}_model"] = comp.name or type(comp).__name__
        fo = self.fusion_options()
        d["fusion_weights"] = {m: fo.weight(m) for m in d["modalities"]}
        return d

    # ------------------------------------------------------------------ streams and runs
    def stream(self, mode: Union[RunningMode, str] = RunningMode.FILE, fusion: "Optional[FusionOptions]" = None, *,
               stream_id: Optional[str] = None, keep_frames: bool = False) -> Stream:
        """A new stream on this engine. ``mode``: RunningMode or 'file' | 'live'; ``fusion``: FusionOptions
        (default: :meth:`fusion_options`, the weights fitted for these models)."""
        if self._closed:
            raise EmoEdgeError("the engine is closed")
        return Stream(self, mode=mode, fusion=self.fusion_options() if fusion is None else fusion,
                      stream_id=stream_id, keep_frames=keep_frames)

    def scheduler(self, **options: Any) -> "FrameScheduler":
        """A :class:`~emoedge.scheduler.FrameScheduler` batching the expression model across this engine's
        streams; ``options``: SchedulerOptions fields (max_wait_ms, max_batch, max_pending, batch)."""
        from .scheduler import FrameScheduler, SchedulerOptions
        return FrameScheduler(self, SchedulerOptions(**options))

    def run(self, *, video: Any = None, audio: Any = None, camera: Any = None, mic: Any = None, text: Any = None,
            realtime: bool = False, fusion: "Optional[FusionOptions]" = None, keep_frames: bool = False,
            queue_size: int = 8, speed: float = 1.0) -> Run:
        """Drive sources through a new stream; iterate the result for events (a generator-like :class:`Run`).

        ``video``: a video file (its audio track is used unless ``audio`` is given) or a Source; ``audio``: an
        audio file or Source; ``camera``: a camera index; ``mic``: True / a sounddevice device; ``text``: a text
        file (see TextFileSource) or Source. File sources run in file mode (every frame, in time order across
        sources, deterministic) unless ``realtime=True`` (paced at ``speed`` x real time, live semantics).
        Cameras and microphones always run live: only the newest frame is analyzed, skipped frames are
        counted in ``stats.frames_dropped``."""
        srcs = open_sources(video=video, audio=audio, camera=camera, mic=mic, text=text)
        live = realtime or any(s.live for s in srcs)
        st = self.stream(RunningMode.LIVE if live else RunningMode.FILE, fusion, keep_frames=keep_frames)
        return Run(st, srcs, live=live, realtime=realtime, queue_size=queue_size, speed=speed)

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def close(self) -> None:
        """Close the engine: no new streams, and pushes on its existing streams raise StreamClosedError
        (a stream must not keep running on an engine its owner considers shut down)."""
        self._closed = True

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
