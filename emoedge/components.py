"""The written interfaces of the face, voice and text components (``typing.Protocol``), and
:func:`build_components`, the one place where components are made from :class:`~emoedge.options.RuntimeOptions`.

An :class:`~emoedge.engine.Engine` holds one component per modality, shared by all of its streams; a
:class:`~emoedge.stream.Stream` asks each shared component for its per-stream state (a face tracker, a
voice stream) and calls the components directly. Any object with these methods and attributes can be
passed as ``Engine(face=..., voice=..., text=...)`` (custom models, test fakes); the bundled ones are
:class:`~emoedge.faces.FaceAnalyzer`, :class:`~emoedge.voice.VoiceModel` and :class:`~emoedge.text.TextModel`.

Data path of one input (see also README "Architecture")::

    Stream.push_frame -> FaceComponent.analyze(frame, t, tracker) -> [FaceObservation]
    Stream.push_audio -> VoiceStream.push(pcm, rate, t)           -> [VoiceObservation]
    Stream.push_text  -> TextComponent.predict(text)              -> TextObservation
        -> emoedge.adapters (observations -> fusion.ModalityEvidence) -> fusion.FusionState.update
        -> emoedge.adapters.event_from_estimate -> EmotionEvent
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, List, Mapping, Optional, Sequence

import numpy as np

from .errors import InvalidInputError, ModelNotFoundError, VariantNotFoundError
from .manifest import load_manifest
from .options import RuntimeOptions

if TYPE_CHECKING:  # pragma: no cover
    from .faces import FaceAnalyzerOptions
    from .manifest import Manifest
    from .voice import VoiceOptions

try:  # Python >= 3.8
    from typing import Protocol, runtime_checkable
except ImportError:  # pragma: no cover
    from typing_extensions import Protocol, runtime_checkable  # type: ignore

__all__ = ["FaceObservation", "Tracker", "FaceComponent", "VoiceObservation", "VoiceStreamLike",
           "VoiceComponent", "TextObservation", "TextComponent", "Components", "build_components"]


# ----------------------------------------------------------------------------- face

@runtime_checkable
class FaceObservation(Protocol):
    """One face of one frame, as a face component reports it (e.g. :class:`emoedge.faces.Face`).
    ``box``: (x, y, w, h) pixels; ``score``: detector confidence in (0, 1]; ``keypoints``: [K, 2] pixels or
    None; ``track_id``: from the stream's tracker (None without one); ``labels``/``probs``: the model's
    labels and calibrated probabilities in its output order; ``timing``: ms per stage of this frame
    (``detect_ms``, ``align_ms``, ``classify_ms``; the names may also lack the ``_ms`` suffix)."""

    @property
    def box(self) -> Sequence[float]: ...
    @property
    def score(self) -> float: ...
    @property
    def keypoints(self) -> Any: ...
    @property
    def track_id(self) -> Optional[int]: ...
    @property
    def labels(self) -> Sequence[str]: ...
    @property
    def probs(self) -> Any: ...
    @property
    def timing(self) -> Mapping[str, float]: ...


@runtime_checkable
class Tracker(Protocol):
    """Per-stream face-tracking state, made by :meth:`FaceComponent.new_tracker` and passed back to
    :meth:`FaceComponent.analyze`; the stream only resets it (when the frame size changes)."""

    def reset(self) -> None: ...


@runtime_checkable
class FaceComponent(Protocol):
    """Shared face pipeline (thread-safe, no per-stream state)."""

    @property
    def name(self) -> str: ...

    def new_tracker(self) -> Tracker: ...

    def analyze(self, frame_bgr: np.ndarray, t: Optional[float] = None,
                tracker: Optional[Any] = None) -> Sequence[FaceObservation]: ...


# ----------------------------------------------------------------------------- voice

@runtime_checkable
class VoiceObservation(Protocol):
    """One run of a voice model (e.g. :class:`emoedge.voice.VoiceEvidence`). ``t_end``: end of the window
    (s, source clock); ``labels``/``probs``: model labels and calibrated probabilities; ``vad_prob``: speech
    probability of the window (NaN without VAD); ``latency_ms``: time of the model run."""

    @property
    def t_end(self) -> float: ...
    @property
    def labels(self) -> Sequence[str]: ...
    @property
    def probs(self) -> Any: ...
    @property
    def vad_prob(self) -> float: ...
    @property
    def latency_ms(self) -> Optional[float]: ...


@runtime_checkable
class VoiceStreamLike(Protocol):
    """Per-stream voice state (e.g. :class:`emoedge.voice.VoiceStream`)."""

    def push(self, pcm: Any, sample_rate: int, t: Optional[float] = None) -> Sequence[VoiceObservation]: ...

    def flush(self) -> Sequence[VoiceObservation]: ...

    def reset(self) -> None: ...


@runtime_checkable
class VoiceComponent(Protocol):
    """Shared voice model (thread-safe); ``stream(options)`` makes the per-stream state."""

    @property
    def name(self) -> str: ...

    def stream(self, options: "Optional[VoiceOptions]" = None) -> VoiceStreamLike: ...


# ----------------------------------------------------------------------------- text

@runtime_checkable
class TextObservation(Protocol):
    """A text prediction (e.g. :class:`emoedge.text.TextPrediction`); ``n_tokens == 0`` means the model
    could read nothing (no evidence)."""

    @property
    def labels(self) -> Sequence[str]: ...
    @property
    def probs(self) -> Any: ...
    @property
    def n_tokens(self) -> int: ...


@runtime_checkable
class TextComponent(Protocol):
    """Shared text model (thread-safe)."""

    @property
    def name(self) -> str: ...

    def predict(self, text: str) -> TextObservation: ...


# ----------------------------------------------------------------------------- the factory

@dataclass
class Components:
    """The components of one engine (None: modality off) and the notes made while loading them."""
    face: Optional[FaceComponent] = None
    voice: Optional[VoiceComponent] = None
    text: Optional[TextComponent] = None
    notes: List[str] = field(default_factory=list)


def build_components(*, runtime: RuntimeOptions, manifest: "Optional[Manifest]", models: Optional[Mapping[str, str]] = None,
                     precision: Optional[str] = None, face: Any = None, voice: Any = None, text: Any = None,
                     face_options: "Optional[FaceAnalyzerOptions]" = None, skip_missing: bool = False) -> Components:
    """Make the engine's components. ``face``/``voice``/``text``: None loads the bundled component for the
    task (model name from ``models``, else the manifest default), False leaves the modality out, anything
    else is used as it is. Every bundled component gets the same ``runtime`` and ``manifest``.
    ``precision`` picks the model variant; a family without it keeps its default, with a RuntimeWarning
    and a note. ``skip_missing``: a default component whose pipeline or model is missing is left out (noted)."""
    models = dict(models or {})
    out = Components()

    def optional(what: str, load: Callable[[], Any], given: Any) -> Any:
        if given is False:
            return None
        if given is not None and given is not True:
            return given
        if not skip_missing:
            return load()
        try:
            return load()
        except ModelNotFoundError as e:
            out.notes.append(f"{what} left out: {e}")
            return None

    def with_precision(what: str, load: Callable[[Optional[str]], Any]) -> Any:
        if precision is None:
            return load(None)
        try:
            return load(precision)
        except VariantNotFoundError as e:
            msg = f"{what}: {e}; using its default precision"
            warnings.warn(msg, RuntimeWarning, stacklevel=4)
            out.notes.append(msg)
            return load(None)

    def load_face() -> Any:
        try:
            from .faces import FaceAnalyzer, FaceAnalyzerOptions
        except ImportError as e:
            raise ModelNotFoundError(f"the face pipeline (emoedge.faces) is not available in this build ({e}); "
                                     "pass face=False to run without faces") from None
        base = face_options if face_options is not None else FaceAnalyzerOptions()
        base = dataclasses.replace(base, expression_model=base.expression_model or models.get("face_expression"),
                                   detector=base.detector or models.get("face_detector"))
        # FaceAnalyzerOptions.manifest (a path), when set, names the face models' own manifest
        man = manifest if base.manifest is None else load_manifest(base.manifest)
        if base.precision is not None:
            return FaceAnalyzer(base, manifest=man, runtime=runtime)
        return with_precision("face", lambda p: FaceAnalyzer(dataclasses.replace(base, precision=p), manifest=man,
                                                             runtime=runtime))

    def load_voice() -> Any:
        try:
            from .voice import VoiceModel
        except ImportError as e:
            raise ModelNotFoundError(f"the voice pipeline (emoedge.voice) is not available in this build ({e}); "
                                     "pass voice=False to run without audio") from None
        return with_precision("voice", lambda p: VoiceModel(name=models.get("voice"), precision=p, manifest=manifest,
                                                            runtime=runtime))

    def load_text() -> Any:
        try:
            from .text import TextModel
        except ImportError as e:
            raise ModelNotFoundError(f"the text pipeline (emoedge.text) is not available in this build ({e}); "
                                     "pass text=False to run without text") from None
        return with_precision("text", lambda p: TextModel.load(name=models.get("text"), precision=p, manifest=manifest,
                                                               runtime=runtime))

    out.face = optional("face", load_face, face)
    out.voice = optional("voice", load_voice, voice)
    out.text = optional("text", load_text, text)
    for what, comp, proto in (("face", out.face, FaceComponent), ("voice", out.voice, VoiceComponent),
                              ("text", out.text, TextComponent)):
        if comp is not None and not isinstance(comp, proto):
            missing = [m for m in _members(proto) if not hasattr(comp, m)]
            raise InvalidInputError(f"{what}={type(comp).__name__} does not implement emoedge.components."
                                    f"{proto.__name__} (missing: {', '.join(missing)})")
    return out


def _members(proto: type) -> List[str]:
    return sorted(n for n in vars(proto) if not n.startswith("_"))
