"""Text featurizer: normalization, tokenization and hashed word/char n-grams (vectorized numpy).

Pipeline (``TextFeaturizer.featurize(text)``)::

    text --NFKC--> lowercase --control/format chars and U+FFFD -> space--> tokens (re: \\w+ | one symbol)
         --truncate to max_tokens--> word 1..2-grams and char 3..5-grams of "<token>"
         [+ cue-context words: the cue_window tokens after each cue token, e.g. "feel"]
         --hash (polynomial mod 2^64 + murmur3 fmix64, seeded, salted per kind/n)--> bucket ids
         --count--> (unique bucket ids int64 [n], sublinear tf = 1 + ln(count) float32 [n])

IDF weighting and L2 normalisation happen inside the ONNX graph (the IDF table is an initializer).

Hash (stable, documented, language-independent; not Python's salted ``hash()``): for a code-point
sequence c_0..c_{L-1}, ``P = sum_k c_k * B^(L-1-k) mod 2^64`` with ``B = HASH_BASE``; a feature's
bucket is ``fmix64(P ^ salt) & (buckets - 1)`` where ``salt = fmix64(seed * 2^32 + kind * 256 + n)``
(kind 1 = word n-gram over token hashes, 2 = char n-gram, 3 = cue-context word). Word uni-grams hash
"<token>", word bi-grams hash the pair of their uni-gram values ``fmix64(P1 * BIGRAM_MUL + P2)``. Char
n-grams are windows of "<token>" that stay within the token (fastText style). Cue-context words (a fourth
block, only when ``cue_words`` and ``cue_window`` are set) are the tokens at positions i+1..i+cue_window
after each token i that is one of ``cue_words``, hashed like uni-grams with the kind-3 salt: "i feel so
lonely" with cue "feel" adds "so" and "lonely" to that block, so the words that say what is felt count
apart from the rest of the sentence. ``reference_bucket`` is a scalar, loop-based implementation of the
same definition, used by the tests.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np

from .errors import InvalidInputError

HASH_BASE = 0x100000001B3  # the (odd) FNV-64 prime, used as polynomial base
MASK64 = (1 << 64) - 1
HASH_BASE_INV = pow(HASH_BASE, -1, 1 << 64)
BIGRAM_MUL = 0x9E3779B97F4A7C15
KIND_WORD, KIND_CHAR, KIND_CUE = 1, 2, 3
N_BLOCKS = 3  # word uni-grams, word bi-grams, char n-grams (+ 1 cue-context block where options enable it)
MAX_CUE_WINDOW = 16
_BLOCK_IDS = np.arange(N_BLOCKS + 1, dtype=np.int64)

_TOKEN_RE = re.compile(r"\w+|[^\w\s]")
# C0/C1 controls, zero-width and bidi format characters, BOM, replacement char -> space.
_STRIP_RE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff\ufffd]")


@dataclass
class FeaturizerOptions:
    """Featurizer parameters (stored in the manifest entry under ``featurizer``).

    buckets: number of hash buckets (power of two). word_ngrams/char_ngrams: inclusive (min, max) n.
    max_tokens: tokens kept after tokenization (the rest is dropped, ``truncated`` is set).
    max_chars: characters of input looked at (bounds time for huge inputs; applied before NFKC).
    max_word_chars: code points kept of one token (longer runs, e.g. unsegmented CJK, are cut).
    seed: hash seed (changing it changes every bucket; models are trained for one seed).
    cue_words/cue_window: tokens (normalized: lower case) after which the next ``cue_window`` tokens also
    go into a fourth feature block (block 3); empty / 0 disables it (then there are 3 blocks)."""
    buckets: int = 1 << 18
    word_ngrams: Tuple[int, int] = (1, 2)
    char_ngrams: Tuple[int, int] = (3, 5)
    max_tokens: int = 256
    max_chars: int = 4096
    max_word_chars: int = 24
    seed: int = 0x5EED
    hash: str = "poly64-fmix64-v1"
    cue_words: Tuple[str, ...] = ()
    cue_window: int = 0

    @property
    def n_blocks(self) -> int:
        """Feature blocks: 3, or 4 with the cue-context block."""
        return N_BLOCKS + (1 if self.cue_words and self.cue_window > 0 else 0)

    def validate(self) -> "FeaturizerOptions":
        b = int(self.buckets)
        if b < 2 or b & (b - 1) or b > (1 << 30):
            raise InvalidInputError(f"FeaturizerOptions.buckets={self.buckets!r}: must be a power of two in [2, 2^30]")
        for name in ("word_ngrams", "char_ngrams"):
            lo, hi = getattr(self, name)
            if not (0 <= lo <= hi) or (name == "word_ngrams" and hi > 2):
                raise InvalidInputError(f"FeaturizerOptions.{name}={getattr(self, name)!r}: need 0 <= min <= max "
                                        "(word n-grams up to 2; (0, 0) disables)")
        for name in ("max_tokens", "max_chars", "max_word_chars"):
            if int(getattr(self, name)) < 1:
                raise InvalidInputError(f"FeaturizerOptions.{name}={getattr(self, name)!r}: must be >= 1")
        if int(self.max_tokens) * (int(self.max_word_chars) + 2) > _POW_N:
            raise InvalidInputError(f"FeaturizerOptions: max_tokens * (max_word_chars + 2) must be <= {_POW_N}")
        if not 0 <= int(self.cue_window) <= MAX_CUE_WINDOW:
            raise InvalidInputError(f"FeaturizerOptions.cue_window={self.cue_window!r}: must be in [0, {MAX_CUE_WINDOW}]")
        if isinstance(self.cue_words, str) or not all(isinstance(w, str) and w and tokenize(normalize(w)) == [w]
                                                      for w in self.cue_words):
            raise InvalidInputError(f"FeaturizerOptions.cue_words={self.cue_words!r}: need a tuple of single "
                                    "normalized tokens (lower case, no spaces or punctuation), e.g. ('feel', 'felt')")
        if self.hash != "poly64-fmix64-v1":
            raise InvalidInputError(f"FeaturizerOptions.hash={self.hash!r}: only 'poly64-fmix64-v1' is implemented")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["word_ngrams"] = list(self.word_ngrams)
        d["char_ngrams"] = list(self.char_ngrams)
        if not self.n_blocks > N_BLOCKS:  # entries of 3-block models stay as they were
            del d["cue_words"], d["cue_window"]
        else:
            d["cue_words"] = list(self.cue_words)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "FeaturizerOptions":
        d = dict(d)
        for k in ("word_ngrams", "char_ngrams"):
            if k in d:
                d[k] = tuple(int(v) for v in d[k])
        if "cue_words" in d:
            d["cue_words"] = tuple(str(v) for v in d["cue_words"])
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise InvalidInputError(f"unknown featurizer option(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d).validate()


# --------------------------------------------------------------------------- hashing helpers
def _fmix64(k: np.ndarray) -> np.ndarray:
    """murmur3 64-bit finalizer, elementwise on uint64 (wrapping arithmetic)."""
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xFF51AFD7ED558CCD)
    k = k ^ (k >> np.uint64(33))
    k = k * np.uint64(0xC4CEB9FE1A85EC53)
    return k ^ (k >> np.uint64(33))


def _fmix64_int(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & MASK64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & MASK64
    return k ^ (k >> 33)


def salt(seed: int, kind: int, n: int) -> int:
    return _fmix64_int(((int(seed) << 32) + kind * 256 + n) & MASK64)


def poly_hash(s: str) -> int:
    """P(s) = sum_k ord(s_k) * B^(L-1-k) mod 2^64 (scalar reference)."""
    h = 0
    for ch in s:
        h = (h * HASH_BASE + ord(ch)) & MASK64
    return h


def reference_bucket(kind: str, gram, opts: FeaturizerOptions) -> int:
    """Bucket of one feature by the documented definition, in plain Python (slow; for tests).
    kind 'word': gram is a tuple of 1 or 2 tokens; kind 'char': gram is a string window of "<token>";
    kind 'cue': gram is the one token that follows a cue token."""
    m = opts.buckets - 1
    if kind == "cue":
        return _fmix64_int(poly_hash("<" + gram + ">") ^ salt(opts.seed, KIND_CUE, 1)) & m
    if kind == "char":
        return _fmix64_int(poly_hash(gram) ^ salt(opts.seed, KIND_CHAR, len(gram))) & m
    ps = [poly_hash("<" + t + ">") for t in gram]
    v = ps[0] if len(ps) == 1 else _fmix64_int((ps[0] * BIGRAM_MUL + ps[1]) & MASK64)
    return _fmix64_int(v ^ salt(opts.seed, KIND_WORD, len(ps))) & m


_POW_N = 1 << 14  # power tables cover streams up to this many code points


def _powers(base: int, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint64)
    v = 1
    for i in range(n):
        out[i] = v
        v = (v * base) & MASK64
    return out


_POW = _powers(HASH_BASE, _POW_N + 1)
_POW_INV = _powers(HASH_BASE_INV, _POW_N + 1)


# --------------------------------------------------------------------------- featurizer
def normalize(text: str, max_chars: int = 1 << 30) -> str:
    """NFKC, lowercase, control/format/replacement characters -> space. ``text`` is cut to
    ``max_chars`` characters first (bounded time for huge inputs)."""
    if len(text) > max_chars:
        text = text[:max_chars]
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    return _STRIP_RE.sub(" ", text.lower())


def tokenize(text: str) -> list:
    """Tokens of normalized text: runs of word characters (any script) and single symbols
    (punctuation, emoji), e.g. "don't!" -> ["don", "'", "t", "!"]."""
    return _TOKEN_RE.findall(text)


def to_text(text) -> str:
    """str passes through; bytes/bytearray/memoryview are decoded as UTF-8 with errors='replace'
    (invalid bytes become U+FFFD, which the normalizer turns into a space). Anything else raises."""
    if isinstance(text, str):
        return text
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text).decode("utf-8", errors="replace")
    raise InvalidInputError(f"text must be str or bytes (UTF-8), got {type(text).__name__}; "
                            "convert it with str(...) or pass the raw bytes")


@dataclass
class Features:
    """Hashed features of one text: ``indices`` int64 [n] (bucket ids), ``tf`` float32 [n] (1 + ln count),
    ``blocks`` int64 [n] (0 word uni-gram, 1 word bi-gram, 2 char n-gram, 3 cue-context word; (block,
    index) pairs are unique), ``n_tokens`` (tokens used) and ``truncated`` (input was cut)."""
    indices: np.ndarray
    tf: np.ndarray
    blocks: np.ndarray
    n_tokens: int
    truncated: bool = False


class TextFeaturizer:
    """Deterministic hashed n-gram featurizer; thread-safe (no mutable state)."""

    def __init__(self, opts: Optional[FeaturizerOptions] = None):
        self.opts = (opts or FeaturizerOptions()).validate()
        o = self.opts
        self._mask = np.uint64(o.buckets - 1)
        self._word_salts = {n: np.uint64(salt(o.seed, KIND_WORD, n)) for n in (1, 2)}
        clo, chi = o.char_ngrams
        self._char_n = np.arange(max(clo, 1), chi + 1, dtype=np.int64) if chi >= 1 else np.zeros(0, np.int64)
        self._char_salt_arr = np.array([salt(o.seed, KIND_CHAR, int(n)) for n in self._char_n], dtype=np.uint64)
        self.n_blocks = o.n_blocks
        self._cues = frozenset(o.cue_words) if self.n_blocks > N_BLOCKS else frozenset()
        self._cue_salt = np.uint64(salt(o.seed, KIND_CUE, 1))

    def tokens(self, text) -> Tuple[list, bool]:
        """(tokens, truncated) for str/bytes ``text``."""
        o = self.opts
        s = to_text(text)
        truncated = len(s) > o.max_chars
        toks = tokenize(normalize(s, o.max_chars))
        if len(toks) > o.max_tokens:
            toks = toks[:o.max_tokens]
            truncated = True
        mw = o.max_word_chars
        return [t if len(t) <= mw else t[:mw] for t in toks], truncated

    def hashed(self, toks: list) -> Tuple[np.ndarray, np.ndarray]:
        """(bucket ids uint64 [n], block ids int64 [n]) of all features of a token list, with repeats.
        Blocks: 0 = word uni-grams, 1 = word bi-grams, 2 = char n-grams, 3 = cue-context words (only
        with cue options; each block is L2-normalised separately in the model)."""
        o = self.opts
        if not toks:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        stream = "<" + "><".join(toks) + ">"
        c = np.frombuffer(stream.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        L = c.size
        lens = np.fromiter((len(t) + 2 for t in toks), dtype=np.int64, count=len(toks))
        ends = np.cumsum(lens)
        starts = ends - lens
        # G[i] = sum_{k<i} c_k * Binv^(k+1); window hash P[s, e) = B^e * (G[e] - G[s])
        G = np.zeros(L + 1, dtype=np.uint64)
        np.cumsum(c * _POW_INV[1:L + 1], out=G[1:])
        # salted pre-hashes of every feature, one fmix64 pass at the end
        parts, sizes = [], [0, 0, 0, 0]
        lo, hi = o.word_ngrams
        pw = _POW[ends] * (G[ends] - G[starts])  # uni-gram pre-hashes (also what the cue block hashes)
        if hi >= 1:
            if lo <= 1:
                parts.append(pw ^ self._word_salts[1])
                sizes[0] = pw.size
            if hi >= 2 and pw.size > 1:
                parts.append(_fmix64(pw[:-1] * np.uint64(BIGRAM_MUL) + pw[1:]) ^ self._word_salts[2])
                sizes[1] = pw.size - 1
        if self._char_n.size:
            word_end = np.repeat(ends, lens)
            ok = np.arange(L, dtype=np.int64)[None, :] + self._char_n[:, None] <= word_end[None, :]
            ni, st = np.nonzero(ok)
            if st.size:
                e = st + self._char_n[ni]
                parts.append((_POW[e] * (G[e] - G[st])) ^ self._char_salt_arr[ni])
                sizes[2] = st.size
        if self._cues:
            cue = [i for i, t in enumerate(toks) if t in self._cues]
            if cue:
                n, w = len(toks), self.opts.cue_window
                pos = np.array([j for i in cue for j in range(i + 1, min(i + 1 + w, n))], dtype=np.int64)
                if pos.size:
                    parts.append(pw[pos] ^ self._cue_salt)
                    sizes[3] = pos.size
        if not parts:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
        h = _fmix64(np.concatenate(parts) if len(parts) > 1 else parts[0]) & self._mask
        return h, np.repeat(_BLOCK_IDS, sizes)

    def featurize(self, text) -> Features:
        """Features of one text (str or bytes). Empty/whitespace-only text gives n_tokens=0 and no features."""
        toks, truncated = self.tokens(text)
        h, blk = self.hashed(toks)
        if h.size == 0:
            return Features(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64), len(toks), truncated)
        key, cnt = np.unique(h.astype(np.int64) + blk * self.opts.buckets, return_counts=True)
        tf = (1.0 + np.log(cnt)).astype(np.float32)
        return Features(key & (self.opts.buckets - 1), tf, key // self.opts.buckets, len(toks), truncated)

    def to_csr(self, texts, n_blocks: Optional[int] = None):
        """scipy.sparse CSR [len(texts), n_blocks * buckets] of sublinear tf, column = block * buckets +
        bucket (training helper; needs scipy). ``n_blocks`` defaults to the featurizer's."""
        import scipy.sparse as sp
        n_blocks = self.n_blocks if n_blocks is None else int(n_blocks)
        indptr = [0]
        inds, vals = [], []
        for t in texts:
            f = self.featurize(t)
            inds.append(f.indices + f.blocks * self.opts.buckets)
            vals.append(f.tf)
            indptr.append(indptr[-1] + f.indices.size)
        return sp.csr_matrix((np.concatenate(vals), np.concatenate(inds), np.asarray(indptr)),
                             shape=(len(texts), n_blocks * self.opts.buckets))
