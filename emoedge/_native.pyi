"""Type stubs of the C++ extension emoedge._native (csrc/python/*.cpp). Call the kernels through
emoedge.kernels / emoedge.detect / emoedge.fusion, which validate arguments and fall back to numba.
Argument errors are raised as emoedge.errors.InvalidInputError (a ValueError) and InvalidTypeError
(a TypeError); tests/test_architecture.py checks that these stubs name exactly the module's members."""
import enum
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

__version__: str

def cpu_flags() -> str:
    """CPU features seen at run time (space-separated)."""

def simd_enabled() -> bool:
    """True when the AVX2+FMA fast paths are used."""

# ----------------------------------------------------------------------------- frame
class Interp(enum.Enum):
    linear = 0
    area = 1

class Color(enum.Enum):
    keep = 0
    swap_rb = 1
    gray = 2

class Border(enum.Enum):
    constant = 0
    replicate = 1

class FrameOptions:
    """The C++ frame::Options; to_dict()/from_dict() (enums by name), picklable."""
    interp: Interp
    color: Color
    input_rgb: bool
    border: Border
    border_value: float
    letterbox: bool
    pad_value: float
    scale: List[float]
    offset: List[float]
    def __init__(self) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...
    @staticmethod
    def from_dict(d: Dict[str, Any]) -> "FrameOptions": ...

def frame_boxes(image: np.ndarray, boxes: npt.ArrayLike, out: np.ndarray, options: FrameOptions) -> None:
    """Resize boxes (x, y, w, h) of a uint8 image into out[N, C, H, W] (float32, any strides)."""

def frame_affine(image: np.ndarray, inverse: npt.ArrayLike, out: np.ndarray, options: FrameOptions) -> None:
    """Warp a uint8 image with N inverse 2x3 affines (output -> source) into out[N, C, H, W]."""

def frame_inner_rect(arg0: float, arg1: float, arg2: int, arg3: int, arg4: bool) -> Tuple[int, int, int, int]:
    """Output sub-rectangle (x, y, w, h) a bw x bh region is resized into (letterbox keeps aspect ratio)."""

# ----------------------------------------------------------------------------- log-mel
class MelScale(enum.Enum):
    slaney = 0
    htk = 1

class MelNorm(enum.Enum):
    none = 0
    slaney = 1

class LogScale(enum.Enum):
    db = 0
    ln = 1

class LogMelConfig:
    """The C++ LogMelConfig; dict form = emoedge.kernels.LogMelOptions.to_dict(); picklable."""
    sample_rate: int
    n_fft: int
    win_length: int
    hop_length: int
    n_mels: int
    fmin: float
    fmax: Optional[float]
    center: bool
    mel_scale: MelScale
    norm: MelNorm
    log: LogScale
    top_db: Optional[float]
    amin: float
    def __init__(self) -> None: ...
    def validate(self) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...
    @staticmethod
    def from_dict(d: Dict[str, Any]) -> "LogMelConfig": ...

class LogMel:
    def __init__(self, config: LogMelConfig = ...) -> None: ...
    @property
    def config(self) -> LogMelConfig: ...
    @property
    def n_mels(self) -> int: ...
    def compute(self, waveform: object) -> npt.NDArray[np.float32]:
        """waveform: 1-D int16 or float32 [samples] -> float32 [frames, n_mels]"""
    def filterbank(self) -> npt.NDArray[np.float32]:
        """Mel filterbank as float32 [n_mels, n_fft/2 + 1]"""
    def window(self) -> npt.NDArray[np.float32]:
        """Analysis window as float32 [n_fft] (periodic Hann of win_length, centered)"""
    def num_frames(self, n_samples: int) -> int: ...

class LogMelStream:
    def __init__(self, logmel: LogMel) -> None: ...
    @property
    def finished(self) -> bool: ...
    @property
    def frames_emitted(self) -> int: ...
    @property
    def samples_seen(self) -> int: ...
    def accept(self, chunk: object, sample_rate: object = None) -> npt.NDArray[np.float32]:
        """chunk: 1-D int16/float32 (any length, also 0) -> float32 [new_frames, n_mels]"""
    def flush(self) -> npt.NDArray[np.float32]:
        """End of signal: the remaining center-padded frames, float32 [frames, n_mels]"""
    def reset(self) -> None:
        """Start a new signal"""

# ----------------------------------------------------------------------------- detection
def blazeface_anchors(input_size: int, strides: Sequence[int], per_cell: Sequence[int]) -> npt.NDArray[np.float32]:
    """Anchor centres float32 [N, 2] (x, y in [0, 1]) for a BlazeFace model."""

class DecodeOptions:
    """The C++ detect::DecodeOptions; to_dict()/from_dict(), picklable."""
    min_score: float
    nms_iou: float
    max_faces: int
    box_scale: float
    transform: Tuple[float, float, float, float]
    score_clip: float
    def __init__(self) -> None: ...
    def validate(self) -> None: ...
    def to_dict(self) -> Dict[str, Any]: ...
    @staticmethod
    def from_dict(d: Dict[str, Any]) -> "DecodeOptions": ...

def blazeface_decode(regressors: object, scores: object, anchors: object,
                     options: DecodeOptions = ...) -> npt.NDArray[np.float32]:
    """Decode BlazeFace outputs -> float32 [K, 17] rows (x, y, w, h, score, 6 keypoints x/y) in frame pixels."""

# ----------------------------------------------------------------------------- fusion
def fusion_pool(log_probs: np.ndarray, weights: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Weighted log-linear pooling only: float32 [K] log_softmax(sum_i weights[i] * l_i); l_i = log_probs[i] on
    the classes row i models (mask uint8/bool [M, K], None = all) and its best modelled value elsewhere."""

def fusion_step(log_probs: np.ndarray, weights: np.ndarray, state: np.ndarray, has_state: bool, alpha: float,
                out: object = None, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """One fusion step (log-linear pool over partial label spaces, then exponential smoothing of the state in
    place)."""

# ----------------------------------------------------------------------------- roi
def roi_match(windows: np.ndarray, templates: np.ndarray) -> npt.NDArray[np.float64]:
    """Template re-localisation (emoedge.roi): windows float32 [K, n_scales, S, S], templates float32 [K, T, T]
    -> float64 [K, 4]: the best peak's sub-pixel (x, y), its NCC value (cv2 TM_CCOEFF_NORMED) and scale index."""
