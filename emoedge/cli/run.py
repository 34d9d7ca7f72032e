"""`emoedge run SOURCE`: fused emotion events from a video file (with its audio track), a camera index, an
audio file or a microphone ('mic'). A progress bar (files) goes to stderr and a summary table (frames,
faces, drops, p50/p95/p99 per stage) closes the run. Outputs are written to a temporary file beside the
target and renamed into place when complete; an output that is one of the inputs is refused. Ctrl-C
(SIGINT) or SIGTERM stops reading, processes what is queued, finishes the outputs, prints the summary
marked "interrupted" and exits 130 (a second signal stops at once)."""
from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Any, Dict, Optional


def add_engine_arguments(p) -> None:
    from ._common import positive_float, positive_int
    p.add_argument("--precision", choices=("int8", "fp32", "fp16"), default=None,
                   help="model precision (default: each model's default in the manifest; a model without the "
                        "requested variant keeps its default, with a note; fp16 is for the GPU backends)")
    p.add_argument("--backend", default="cpu", choices=("cpu", "cuda", "tensorrt", "triton"),
                   help="cpu (default), cuda (emoedge[gpu]), tensorrt, or triton: the models on a Triton Inference "
                        "Server (emoedge[triton]; see --triton-url)")
    p.add_argument("--triton-url", default=None, metavar="HOST:PORT",
                   help="--backend triton: the Triton server's gRPC endpoint (default 127.0.0.1:8001)")
    p.add_argument("--triton-timeout", type=positive_float, default=None, metavar="SECONDS",
                   help="--backend triton: deadline of every model call (default 5 s)")
    p.add_argument("--triton-local", default=None, metavar="TASKS",
                   help="--backend triton: comma-separated tasks kept in-process, e.g. vad,face_detector")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N",
                   help="onnxruntime threads per model (default 1)")
    p.add_argument("--no-face", action="store_true", help="do not analyze faces")
    p.add_argument("--no-voice", action="store_true", help="do not analyze audio")
    p.add_argument("--no-text", action="store_true", help="do not load the text model")
    p.add_argument("--text-model", default=None, metavar="NAME",
                   help="text model manifest entry (default: the manifest default, text-canonical; "
                        "e.g. text-carer for the CARER-only model)")


def make_engine(args, face: bool = True, voice: bool = True, text: bool = True):
    """The engine for a run: only the modalities the inputs need (and the flags allow) are loaded. Precision
    fallbacks and other load-time warnings are printed once each as ``note:`` lines on stderr."""
    from ..engine import Engine
    kw: Dict[str, Any] = {}
    if getattr(args, "no_face", False) or not face:
        kw["face"] = False
    if getattr(args, "no_voice", False) or not voice:
        kw["voice"] = False
    if getattr(args, "no_text", False) or not text or not getattr(args, "text_file", None):
        kw["text"] = False
    if getattr(args, "text_model", None):
        kw["models"] = {"text": args.text_model}
    tri = {k: getattr(args, a, None) for k, a in (("triton_url", "triton_url"), ("triton_timeout_s", "triton_timeout"),
                                                   ("triton_local_tasks", "triton_local"))}
    if any(v is not None for v in tri.values()) or getattr(args, "backend", "cpu") == "triton":
        from ..options import RuntimeOptions
        if args.backend != "triton":
            from ..errors import InvalidInputError
            raise InvalidInputError("--triton-url/--triton-timeout/--triton-local need --backend triton")
        if tri["triton_local_tasks"] is not None:
            tri["triton_local_tasks"] = tuple(x.strip() for x in tri["triton_local_tasks"].split(",") if x.strip())
        kw["runtime"] = RuntimeOptions(backend="triton", threads=args.threads,
                                       **{k: v for k, v in tri.items() if v is not None})
    else:
        kw.update(backend=args.backend, threads=args.threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        engine = Engine(precision=args.precision, **kw)
    print_notes(list(engine.info().get("notes", [])) + load_warnings(caught))
    return engine


def load_warnings(caught) -> list:
    """The messages of RuntimeWarning/UserWarning recorded while loading (precision fallbacks, the numba
    kernel fallback); other categories keep Python's default handling."""
    out = []
    for w in caught:
        if issubclass(w.category, (RuntimeWarning, UserWarning)):
            out.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def print_notes(notes) -> None:
    """Each distinct note once, as ``note: ...`` on stderr."""
    seen = set()
    for n in notes:
        if n not in seen:
            seen.add(n)
            print(f"note: {n}", file=sys.stderr)


class Progress:
    """A one-line progress bar on stderr: share of the source duration done, frames, processing speed."""

    def __init__(self, duration, stream=None, enabled=True, width=28):
        self.duration, self.enabled, self.width = duration, enabled, width
        self.f = stream if stream is not None else sys.stderr
        self.t0 = time.perf_counter()
        self._last = 0.0

    def update(self, t: float, frames: int, force: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not force and now - self._last < 0.2):
            return
        self._last = now
        el = now - self.t0
        if self.duration:
            frac = min(1.0, max(0.0, t / self.duration))
            bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
            head = f"[{bar}] {100 * frac:3.0f}% {t:6.1f}/{self.duration:.1f} s"
        else:
            head = f"{t:7.1f} s"
        speed = f"{frames / el:5.1f} frames/s" if el > 0 else ""
        self.f.write(f"\r{head}  {frames} frames  {speed}  x{(t / el if el > 0 else 0):.1f} real time ")
        self.f.flush()

    def done(self) -> None:
        if self.enabled:
            self.f.write("\n")
            self.f.flush()


def summary_table(stats, wall_s: float, src_s: Optional[float] = None, interrupted: Optional[str] = None) -> str:
    """The closing table: counters and per-stage latency percentiles (ms). ``interrupted``: the signal name
    when the run was stopped by SIGINT/SIGTERM (marked on the first line)."""
    d = stats.to_dict()
    lines = [f"{'interrupted':<18} by {interrupted}: stopped reading, processed what was queued, outputs finished"
             if interrupted else None,
             f"{'frames':<18} {d['frames_in']} in, {d['frames_processed']} processed, {d['frames_dropped']} dropped",
             f"{'faces':<18} {d['faces']} in {d['frames_with_faces']} frames",
             f"{'audio':<18} {d['audio_seconds']:.1f} s, {d['voice_windows']} voice windows, {d['audio_dropped']} chunks dropped",
             f"{'text lines':<18} {d['texts']}",
             f"{'events':<18} {d['events']}",
             f"{'frame size changes':<18} {d['size_changes']}" if d["size_changes"] else None,
             f"{'wall time':<18} {wall_s:.2f} s" + (f" for {src_s:.2f} s of media (x{src_s / wall_s:.1f} real time)"
                                                    if src_s and wall_s > 0 else ""),
             "",
             f"{'stage':<10} {'n':>7} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}"]
    for stage, r in d["latency_ms"].items():
        lines.append(f"{stage:<10} {r['n']:>7} {r['p50']:>9.3f} {r['p95']:>9.3f} {r['p99']:>9.3f}")
    return "\n".join(x for x in lines if x is not None)


def finish_outputs(jw, vw, stopped_early: bool) -> None:
    """Close (commit) the writers, also after an interrupt: the video's audio then ends with its last frame.
    If this itself fails or is interrupted again, the unfinished temporary files are removed."""
    try:
        if jw is not None:
            jw.close()
        if vw is not None:
            vw.close(audio_until=vw.end_time() if stopped_early else None)
    except BaseException:
        for w in (jw, vw):
            if w is not None:
                w.discard()
        raise


def _is_mic(x: str) -> bool:
    return x == "mic" or x.startswith("mic:")


def _main(args) -> int:
    from .._atomic import check_outputs
    from ..outputs import check_video_path
    from ._common import GracefulStop

    src = args.source
    is_camera = src.isdigit() and not os.path.exists(src)
    # Outputs are checked before any input is opened or any model loaded: never write over an input.
    if args.out:
        check_video_path(args.out)
    inputs = [None if (is_camera or _is_mic(src)) else src,
              None if (not args.audio or _is_mic(args.audio)) else args.audio, args.text_file]
    check_outputs([("--jsonl", args.jsonl), ("--out", args.out)], inputs)
    with GracefulStop() as stopper:
        return _run(args, stopper, is_camera)


def _run(args, stopper, is_camera: bool) -> int:
    from .. import sources as S
    from ..errors import InvalidInputError
    from ..outputs import AnnotatedVideoWriter, JsonlWriter, Window

    src = args.source
    video = camera = audio = mic = None
    video_has_audio = False
    clock = S.LiveClock()  # camera and microphone on one clock
    if _is_mic(src):
        mic = True if src == "mic" else src[4:]
    elif is_camera:
        camera = S.CameraSource(int(src), clock=clock)   # opened first: a missing camera fails before models load
    else:
        s = S.open_source(src)
        if isinstance(s, S.VideoFileSource):
            video_has_audio = "audio" in s.kinds
            s.close()
            video = src
        elif isinstance(s, S.AudioFileSource):
            audio = s
        elif isinstance(s, S.TextFileSource):
            args.text_file = args.text_file or src
        else:  # pragma: no cover
            raise InvalidInputError(f"{src}: unsupported source")
    if args.audio:
        if audio is not None:
            raise InvalidInputError("--audio given, but SOURCE is already an audio file")
        if _is_mic(args.audio):
            mic = True if args.audio == "mic" else args.audio[4:]
        else:
            audio = args.audio
    if args.out and video is None and camera is None:
        raise InvalidInputError("--out needs a video SOURCE (a file or a camera)")

    if mic is not None and not isinstance(mic, S.Source):
        mic = S.MicSource(None if mic is True else mic, clock=clock)
    has_audio = audio is not None or mic is not None or (video_has_audio and not args.audio)
    try:
        win = Window() if args.show else None   # a headless OpenCV fails here, before the models load
        engine = make_engine(args, face=video is not None or camera is not None, voice=has_audio)
    except BaseException:
        for x in (camera, mic):
            if isinstance(x, S.Source):
                x.close()
        raise
    live = camera is not None or mic is not None
    run = engine.run(video=video, camera=camera, audio=audio, mic=mic, text=args.text_file, realtime=args.realtime,
                     keep_frames=bool(args.out or args.show))
    graceful = callable(getattr(run, "stop", None))  # the driver drains its queues and flushes on stop()
    jw = vw = None
    stopped_early = False
    t_wall = time.perf_counter()
    try:
        jw = JsonlWriter(args.jsonl) if args.jsonl and args.jsonl != "-" else None
        if args.out:
            fps = 30.0
            if video is not None:
                with S.VideoFileSource(video, audio=False) as vs:
                    fps = vs.fps or 30.0
            vw = AnnotatedVideoWriter(args.out, fps=fps,
                                      copy_audio_from=video if (video and audio is None and mic is None) else None)
        show_progress = (not live) and (args.progress or (args.progress is None and sys.stderr.isatty()))
        prog = Progress(run.duration, enabled=show_progress)
        if graceful:
            stopper.on_stop = run.stop
            if stopper.requested:  # a signal while the models loaded
                run.stop()
        last_print = -1e9
        t_wall = time.perf_counter()
        for ev in run:
            if jw is not None:
                jw.write(ev)
            elif args.jsonl == "-":
                sys.stdout.write(ev.to_json() + "\n")
            elif not args.quiet and ev.t - last_print >= args.print_every:
                if show_progress:
                    sys.stderr.write("\r\033[K")
                print(ev.summary(), flush=True)
                last_print = ev.t
            if ev.frame is not None:
                if vw is not None:
                    vw.write(ev.frame, ev)
                if win is not None and not win.show(ev.frame, ev):
                    stopped_early = True
                    break
                ev.frame = None
            prog.update(run.t, run.stats.frames_processed)
            if (args.duration and ev.t >= args.duration) or (stopper.requested and not graceful):
                stopped_early = True
                break
    except BaseException:
        # a failed (or twice-interrupted) run leaves no half-written output: the targets stay as they were
        run.close()
        for w in (jw, vw):
            if w is not None:
                w.discard()
        if win is not None:
            win.close()
        raise
    run.close()
    if win is not None:
        win.close()
    stopped_early = stopped_early or stopper.requested
    finish_outputs(jw, vw, stopped_early)
    finished = not live and not stopped_early and not (args.duration and run.t < (run.duration or 0))
    prog.update(run.duration if (finished and run.duration) else run.t, run.stats.frames_processed, force=True)
    prog.done()
    wall = time.perf_counter() - t_wall
    print(summary_table(run.stats, wall, run.t if not live else None, interrupted=stopper.signal), file=sys.stderr)
    if jw is not None:
        print(f"wrote {jw.count} events to {args.jsonl}", file=sys.stderr)
    if vw is not None:
        print(f"wrote {vw.count} annotated frames to {args.out}", file=sys.stderr)
    return 130 if stopper.requested else 0


def register(sub) -> None:
    from ._common import positive_float
    p = sub.add_parser("run", help="fused emotion events from a video file, camera, audio file or microphone",
                       description=__doc__)
    p.add_argument("source", metavar="SOURCE",
                   help="video file (its audio track is used), camera index (0), audio file (.wav), or 'mic'")
    p.add_argument("--audio", metavar="FILE", help="audio file (or 'mic') to use instead of the video's audio track")
    p.add_argument("--text-file", metavar="FILE",
                   help="text lines: every line 'SECONDS<TAB>TEXT', or no line timed (then spaced 2 s apart)")
    p.add_argument("--jsonl", metavar="PATH", help="write every event as one JSON line ('-' = stdout); written to a "
                   "temporary file and renamed into place when complete; never an input file")
    p.add_argument("--out", metavar="VIDEO", help="write an annotated video (.mp4, .mkv, .mov, .avi, .m4v: boxes, "
                   "labels, smoothed probability bars, raw evidence panel, the source's audio); atomic like --jsonl")
    p.add_argument("--show", action="store_true", help="show annotated frames in a window (GUI OpenCV builds only)")
    p.add_argument("--realtime", action="store_true",
                   help="pace files at real time with live semantics (newest frame wins, drops counted)")
    p.add_argument("--duration", type=positive_float, default=None, metavar="SECONDS",
                   help="stop after this much source time (> 0)")
    p.add_argument("--print-every", type=positive_float, default=1.0, metavar="SECONDS",
                   help="timeline line interval on stdout when no --jsonl (default 1 s)")
    p.add_argument("--quiet", action="store_true", help="no timeline on stdout")
    p.add_argument("--progress", action="store_true", default=None, help="force the progress bar (default: when stderr is a terminal)")
    add_engine_arguments(p)
    p.set_defaults(func=_main)
