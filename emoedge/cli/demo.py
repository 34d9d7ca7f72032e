"""`emoedge demo`: no input needed. Runs the embedded default models (faces, voice, text) on the bundled
synthetic sample clip (emoedge/samples: a public-domain NASA portrait, espeak-ng speech, two text lines) and
prints a readable timeline of the fused emotion with each modality's evidence, then the summary table.
Ctrl-C / SIGTERM stop it cleanly (summary marked "interrupted", exit 130)."""
from __future__ import annotations

import pathlib
import time

SAMPLES = pathlib.Path(__file__).resolve().parents[1] / "samples"


def sample_paths():
    v, t = SAMPLES / "demo.mp4", SAMPLES / "demo.txt"
    from ..errors import ModelNotFoundError
    for p in (v, t):
        if not p.is_file():
            raise ModelNotFoundError(f"bundled sample {p} is missing; reinstall emoedge "
                                     "(or re-create it with export/make_demo_media.py)")
    return v, t


def _bar(p: float, width: int = 10) -> str:
    n = int(round(max(0.0, min(1.0, p)) * width))
    return "#" * n + "." * (width - n)


def _cell(ev, m: str) -> str:
    r = ev.evidence.get(m)
    if r is None:
        return f"{'-':<22}"
    return f"{r.label:<9} {max(r.probs.values()):.2f} w{r.weight:.2f}"[:22].ljust(22)


def timeline_line(ev) -> str:
    fused = f"{ev.label:<9} {ev.confidence:.2f} {_bar(ev.confidence)}" if ev.label else f"{'(no evidence)':<25}"
    faces = f"{len(ev.faces)}"
    return f"{ev.t:6.2f}s  {fused:<25}  {faces:>5}  {_cell(ev, 'face')}  {_cell(ev, 'voice')}  {_cell(ev, 'text')}"


def _main(args) -> int:
    from .._atomic import check_outputs
    from ..outputs import check_video_path
    from ._common import GracefulStop
    video, text = sample_paths()
    if args.out:
        check_video_path(args.out)
    check_outputs([("--jsonl", args.jsonl), ("--out", args.out)], [video, text])   # before anything is opened
    with GracefulStop() as stopper:
        return _demo(args, video, text, stopper)


def _demo(args, video, text, stopper) -> int:
    import warnings
    from ..engine import Engine
    from ..outputs import AnnotatedVideoWriter, JsonlWriter
    from .run import finish_outputs, load_warnings, print_notes, summary_table

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        engine = Engine(precision=args.precision, threads=args.threads, skip_missing=True)
    t_load = time.perf_counter() - t0
    info = engine.info()
    print(f"emoedge demo: {video.name} (9 s synthetic clip: NASA public-domain portrait, espeak-ng speech) "
          f"+ {text.name}; see {SAMPLES / 'ATTRIBUTION.md'}")
    print(f"models: face={info.get('face_model')}  voice={info.get('voice_model')}  text={info.get('text_model')}  "
          f"backend={engine.backend}, {engine.threads} thread(s); loaded in {t_load * 1000:.0f} ms")
    print_notes(list(info.get("notes", [])) + load_warnings(caught))
    if not info["modalities"]:
        print("no model is installed: nothing to demo; reinstall emoedge")
        return 1
    print()
    print(f"{'time':>7}  {'fused emotion':<25}  {'faces':>5}  {'face evidence':<22}  {'voice evidence':<22}  {'text evidence':<22}")
    run = engine.run(video=video, text=text, keep_frames=bool(args.out))
    graceful = callable(getattr(run, "stop", None))
    jw = vw = None
    t_wall = time.perf_counter()
    next_t = 0.0
    first_event_s = None
    try:
        jw = JsonlWriter(args.jsonl) if args.jsonl else None
        vw = AnnotatedVideoWriter(args.out, fps=15, copy_audio_from=video) if args.out else None
        if graceful:
            stopper.on_stop = run.stop
            if stopper.requested:
                run.stop()
        for ev in run:
            if first_event_s is None:
                first_event_s = time.perf_counter() - t0
            if jw is not None:
                jw.write(ev)
            if vw is not None and ev.frame is not None:
                vw.write(ev.frame, ev)
            ev.frame = None
            if ev.trigger == "text" or (ev.trigger == "frame" and ev.t + 1e-9 >= next_t):
                line = timeline_line(ev)
                if ev.trigger == "text":
                    line += "   <- text line"
                print(line, flush=True)
                if ev.trigger == "frame":
                    next_t += args.every
            if stopper.requested and not graceful:
                break
    except BaseException:
        run.close()
        for w in (jw, vw):
            if w is not None:
                w.discard()
        raise
    run.close()
    finish_outputs(jw, vw, stopper.requested)
    wall = time.perf_counter() - t_wall
    print()
    print(summary_table(run.stats, wall, run.t, interrupted=stopper.signal))
    print(f"{'first event':<18} {first_event_s * 1000:.0f} ms after Engine() was called" if first_event_s else "")
    if jw is not None:
        print(f"wrote {jw.count} events to {args.jsonl}")
    if vw is not None:
        print(f"wrote {vw.count} annotated frames to {args.out}")
    return 130 if stopper.requested else 0


def register(sub) -> None:
    from ._common import positive_float, positive_int
    p = sub.add_parser("demo", help="run the default models on bundled sample media (no input needed)",
                       description=__doc__)
    p.add_argument("--every", type=positive_float, default=0.5, metavar="SECONDS",
                   help="timeline interval (default 0.5 s)")
    p.add_argument("--jsonl", metavar="PATH", help="also write every event as JSON lines (atomic: temporary file, "
                   "then renamed into place)")
    p.add_argument("--out", metavar="VIDEO", help="also write the annotated video (.mp4, .mkv, .mov, .avi, .m4v)")
    p.add_argument("--precision", choices=("int8", "fp32"), default=None,
                   help="model precision (default: each model's default; a model without it keeps its default)")
    p.add_argument("--threads", type=positive_int, default=1, metavar="N", help="onnxruntime threads per model (default 1)")
    p.set_defaults(func=_main)
