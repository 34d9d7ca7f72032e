"""Error types. Every emoedge error derives from :class:`EmoEdgeError` and also from the
matching builtin, so ``except ValueError`` keeps working for callers that don't know ours."""


class EmoEdgeError(Exception):
    """Base class of all errors raised by emoedge."""


class InvalidInputError(EmoEdgeError, ValueError):
    """Bad input (dtype, shape, NaN/Inf, wrong sample rate, ...). The message names the fix."""


class ModelError(EmoEdgeError, RuntimeError):
    """A model file is missing, corrupt, or does not match its manifest entry."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model file named by the manifest (or by the user) does not exist."""


class BackendUnavailableError(EmoEdgeError, RuntimeError):
    """The requested execution backend (cuda, tensorrt, ...) is not available here."""


class StreamClosedError(EmoEdgeError, RuntimeError):
    """A push or flush on a stream that was closed."""


class OutputError(EmoEdgeError, OSError):
    """An output file could not be written (folder not writable, disk full, file-size limit). The target
    is left as it was; the message names it."""
