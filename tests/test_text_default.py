"""The default text model (text-canonical, issue 14): all canonical labels incl. neutral, coverage output,
reliability, fitted fusion weights in the manifest, and what fusion does with them."""
from __future__ import annotations

import numpy as np
import pytest

from emoedge import fusion as F
from emoedge.labels import CANONICAL, to_canonical
from emoedge.manifest import load_manifest
from emoedge.text import TextModel


@pytest.fixture(scope="module")
def model():
    with TextModel.load() as m:
        yield m


def test_default_is_the_canonical_model_with_measured_metrics(model):
    assert model.name == "text-canonical"
    assert {to_canonical(lab) for lab in model.labels} == set(CANONICAL)   # neutral and disgusted included
    e = load_manifest().entry("text-canonical")
    assert e["bytes"] <= 5_000_000 and e["precision"] == "int8"
    m = e["metrics"]
    assert m["carer/val"]["accuracy"] > 0.85 and m["carer/val"]["accuracy_7way_love_as_happy"] > 0.9
    assert m["goemotions-ekman/dev"]["macro_f1"] > 0.58 and "neutral_f1" in m["goemotions-ekman/dev"]
    assert e["thresholds_on"] == "output" and e["thresholds_output"] == "go_scores"
    assert "export/text_default.py" in e["made_by"] and "/work" not in e["made_by"]


def test_predictions_neutral_emotional_and_out_of_domain(model):
    greet = model.predict("Hello, and welcome to the emoedge demo.")
    assert greet.label == "neutral"
    happy = model.predict("I am so happy to see you!")
    assert happy.label == "happy" and happy.coverage == 1.0 and happy.reliability > 0.5
    assert model.predict("This is disgusting, I hate it.").label == "disgusted"
    gib = model.predict("asdkj qwepoi zxmnb")
    assert gib.coverage < 0.5 and gib.reliability == 0.0          # unknown words: no weight
    assert model.predict("Guten Tag, wie geht es dir?").reliability < 0.1
    batch = model.predict_batch(["I am so happy to see you!", "asdkj qwepoi zxmnb"])
    assert [b.coverage for b in batch] == pytest.approx([happy.coverage, gib.coverage], abs=1e-6)
    assert batch[0].multilabel == ("joy",)


def test_text_reliability_terms():
    assert F.text_reliability(8) == pytest.approx(1 - np.exp(-1))          # length only (old behaviour)
    assert F.text_reliability(8, coverage=0.5) == 0.0
    assert F.text_reliability(8, coverage=0.75) == pytest.approx((1 - np.exp(-1)) * 0.5)
    p = [0.5, 0.3, 0.2]
    labs = ("neutral", "happy", "sad")
    assert F.text_reliability(8, probs=p, labels=labs, margin_scale=0.4) == pytest.approx((1 - np.exp(-1)) * 0.5)
    # love and happy are one canonical class: the margin is taken after mapping by name
    assert F.text_reliability(8, probs=[0.4, 0.35, 0.25], labels=("happy", "love", "sad"), margin_scale=1.0) == \
        pytest.approx((1 - np.exp(-1)) * 0.5)


def test_fitted_weights_in_manifest_and_used_by_the_engine():
    man = load_manifest()
    names = {"face": man.find("face_expression"), "voice": man.find("voice"), "text": man.find("text")}
    entries = {m: man.entry(n) for m, n in names.items()}
    for m, e in entries.items():
        fb = e["fusion"]
        assert fb["weight"] > 0 and fb["made_by"] == "python export/fusion_fit.py" and fb["fitted_with"][m] == names[m]
    opts = F.FusionOptions.from_manifest(entries)
    assert {m: opts.weight(m) for m in names} == {m: entries[m]["fusion"]["weight"] for m in names}
    from emoedge import Engine
    eng = Engine(face=False, voice=False)
    assert eng.fusion_options().weight("text") == entries["text"]["fusion"]["weight"]
    assert eng.info()["fusion_weights"]["text"] == entries["text"]["fusion"]["weight"]
    with eng.stream() as s:
        assert s.fusion_options.weight("text") == entries["text"]["fusion"]["weight"]


def test_tie_break_prefers_a_class_with_evidence():
    """A text model without neutral, alone: neutral ties with the best class it models (no evidence can
    lower it); the label is the modelled class."""
    est = F.FusionState(F.FusionOptions(tau_s=0)).update(0.0, [F.ModalityEvidence(
        "text", 0.0, probs=[0.1, 0.6, 0.1, 0.1, 0.05, 0.05], labels=("sadness", "joy", "love", "anger", "fear", "surprise"))])
    assert est.label == "happy"
    assert est.probs[CANONICAL.index("neutral")] == pytest.approx(est.probs[CANONICAL.index("happy")], rel=1e-5)
