"""Text featurizer: determinism, hash stability (golden values + scalar reference), normalization."""
import subprocess
import sys

import numpy as np
import pytest

from emoedge.errors import InvalidInputError
from emoedge.text_features import (FeaturizerOptions, TextFeaturizer, normalize, poly_hash, reference_bucket,
                                   to_text, tokenize)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402


def reference_features(text, opts):
    """All (block, bucket) features of ``text`` by the documented definition, in plain Python."""
    f = TextFeaturizer(opts)
    toks, _ = f.tokens(text)  # normalized, truncated tokens
    assert all(len(t) <= opts.max_word_chars for t in toks)
    out = []
    lo, hi = opts.word_ngrams
    if lo <= 1 <= hi:
        out += [(0, reference_bucket("word", (t,), opts)) for t in toks]
    if hi >= 2:
        out += [(1, reference_bucket("word", (a, b), opts)) for a, b in zip(toks, toks[1:])]
    clo, chi = opts.char_ngrams
    for t in toks:
        w = "<" + t + ">"
        for n in range(max(clo, 1), chi + 1):
            out += [(2, reference_bucket("char", w[i:i + n], opts)) for i in range(len(w) - n + 1)] if chi else []
    if opts.cue_words and opts.cue_window:
        for i, t in enumerate(toks):
            if t in opts.cue_words:
                out += [(3, reference_bucket("cue", u, opts)) for u in toks[i + 1:i + 1 + opts.cue_window]]
    return sorted(out)


def vectorized_features(text, opts):
    h, blk = TextFeaturizer(opts).hashed(TextFeaturizer(opts).tokens(text)[0])
    return sorted(zip(blk.tolist(), h.tolist()))


@pytest.mark.parametrize("text", ["i feel really happy today!", "Hello wörld, 你好世界 don't", "a", "ab cd",
                                  "x" * 40 + " y", "😀😀 ok"])
def test_vectorized_hash_matches_scalar_reference(text):
    opts = FeaturizerOptions()
    assert vectorized_features(text, opts) == reference_features(text, opts)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_vectorized_hash_matches_reference_on_any_text(text):
    opts = FeaturizerOptions(buckets=1 << 12, max_tokens=16, max_word_chars=8)
    assert vectorized_features(text, opts) == reference_features(text, opts)


CUE = FeaturizerOptions(cue_words=("feel", "felt"), cue_window=3)


@pytest.mark.parametrize("text", ["i feel so very lonely today", "feel", "i feel", "i feel feel felt sad !",
                                  "nothing to see here", "I FELT 😀 ok"])
def test_cue_block_matches_scalar_reference(text):
    assert vectorized_features(text, CUE) == reference_features(text, CUE)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["feel", "felt", "so", "sad", "x", "😀", "don't", "."]), max_size=30).map(" ".join))
def test_cue_block_matches_reference_on_any_sequence(text):
    opts = FeaturizerOptions(buckets=1 << 10, max_tokens=12, cue_words=("feel", "felt"), cue_window=2)
    assert vectorized_features(text, opts) == reference_features(text, opts)


def test_cue_block_content():
    """The cue block holds exactly the cue_window tokens after each cue; without cue options there are 3 blocks."""
    f = TextFeaturizer(CUE).featurize("i feel so lonely and tired now")
    assert TextFeaturizer(CUE).n_blocks == 4 and TextFeaturizer().n_blocks == 3
    want = sorted({reference_bucket("cue", t, CUE) for t in ("so", "lonely", "and")})
    assert sorted(f.indices[f.blocks == 3].tolist()) == want
    # the other blocks are unchanged by the cue option
    g = TextFeaturizer().featurize("i feel so lonely and tired now")
    assert sorted(zip(f.blocks[f.blocks < 3].tolist(), f.indices[f.blocks < 3].tolist())) == \
        sorted(zip(g.blocks.tolist(), g.indices.tolist()))
    assert (TextFeaturizer(CUE).featurize("nothing here").blocks < 3).all()
    assert reference_bucket("cue", "lonely", CUE) != reference_bucket("word", ("lonely",), CUE)


def test_golden_hash_values():
    """Bucket ids must never change for a given hash version (models are trained on them)."""
    o = FeaturizerOptions()
    assert poly_hash("<happy>") == 0x43E9DD5D7E0DBB1E
    got = [reference_bucket("word", ("happy",), o), reference_bucket("word", ("feel", "happy"), o),
           reference_bucket("char", "<ha", o), reference_bucket("char", "py>", o)]
    assert got == GOLDEN, got


# Computed once with hash version poly64-fmix64-v1, seed 0x5EED, 2^18 buckets.
GOLDEN = [76445, 34142, 229943, 216079]


def test_deterministic_across_processes():
    code = ("from emoedge.text_features import TextFeaturizer as T; f=T().featurize('I feel GREAT, 你好 😀');"
            "print(f.indices.tolist(), f.blocks.tolist(), f.tf.tolist())")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": s, **__import__("os").environ}).stdout for s in ("0", "1", "2")}
    assert len(outs) == 1
    f = TextFeaturizer().featurize("I feel GREAT, 你好 😀")
    assert outs.pop().strip() == f"{f.indices.tolist()} {f.blocks.tolist()} {f.tf.tolist()}"


def test_features_shape_and_values():
    f = TextFeaturizer().featurize("happy happy joy")
    assert f.indices.dtype == np.int64 and f.tf.dtype == np.float32 and f.blocks.dtype == np.int64
    assert f.indices.shape == f.tf.shape == f.blocks.shape
    assert len(set(zip(f.indices.tolist(), f.blocks.tolist()))) == f.indices.size  # unique pairs
    assert f.n_tokens == 3
    assert np.all(f.indices >= 0) and np.all(f.indices < (1 << 18))
    # "<happy>" occurs twice -> tf = 1 + ln 2 for the unigram
    uni = f.tf[f.blocks == 0]
    np.testing.assert_allclose(sorted(uni.tolist()), [1.0, 1 + np.log(2)], rtol=1e-6)


def test_normalization():
    assert normalize("ＨＥＬＬＯ\x00W\u200borld\ufffd") == "hello w orld "
    assert tokenize("don't stop!! 😀") == ["don", "'", "t", "stop", "!", "!", "😀"]
    assert to_text(b"caf\xc3\xa9 \xff") == "café \ufffd"
    with pytest.raises(InvalidInputError):
        to_text(12)


def test_limits_bound_work():
    f = TextFeaturizer()
    big = ("word " * 30000)  # 150 kB
    out = f.featurize(big)
    assert out.truncated and out.n_tokens == f.opts.max_tokens
    assert f.featurize("").n_tokens == 0 and f.featurize("  \n\t ").indices.size == 0


def test_options_validate_and_roundtrip():
    o = FeaturizerOptions(buckets=1 << 16)
    assert FeaturizerOptions.from_dict(o.to_dict()) == o
    with pytest.raises(InvalidInputError, match="buckets"):
        FeaturizerOptions(buckets=1000).validate()
    with pytest.raises(InvalidInputError, match="unknown"):
        FeaturizerOptions.from_dict({"bukets": 4})
    assert FeaturizerOptions.from_dict(CUE.to_dict()) == CUE
    assert "cue_words" not in o.to_dict()  # 3-block models' manifest entries stay as they were
    for bad in (dict(cue_words=("Feel",)), dict(cue_words="feel"), dict(cue_words=("feel so",)),
                dict(cue_window=17)):
        with pytest.raises(InvalidInputError, match="cue"):
            FeaturizerOptions(**bad).validate()
