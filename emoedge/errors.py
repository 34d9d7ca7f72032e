"""Error types. Every emoedge error derives from :class:`EmoEdgeError` and also from the
matching builtin, so ``except ValueError`` keeps working for callers that don't know ours."""


class EmoEdgeError(Exception):
    """Base class of all errors raised by emoedge."""


class InvalidInputError(EmoEdgeError, ValueError):
    """Bad input (dtype, shape, NaN/Inf, wrong sample rate, ...). The message names the fix. The native
    kernels raise it too (their C++ ``std::invalid_argument`` is translated at the binding)."""


class InvalidTypeError(InvalidInputError, TypeError):
    """Input of the wrong type (not a numpy array, wrong dtype, ...): an InvalidInputError that is also a
    ``TypeError``, so ``except TypeError`` keeps working."""


class ModelError(EmoEdgeError, RuntimeError):
    """A model file is missing, corrupt, or does not match its manifest entry."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model file named by the manifest (or by the user) does not exist."""


class BackendUnavailableError(EmoEdgeError, RuntimeError):
    """The requested execution backend (cuda, tensorrt, ...) is not available here."""


class StreamClosedError(EmoEdgeError, RuntimeError):
    """A push or flush on a stream that was closed."""


class VariantNotFoundError(InvalidInputError):
    """A model family has no file of the requested precision (e.g. ``precision='int8'`` for a model that
    ships only fp32). The message lists the precisions it has."""


class OutputError(EmoEdgeError, OSError):
    """An output file could not be written (folder not writable, disk full, file-size limit). The target
    is left as it was; the message names it."""
