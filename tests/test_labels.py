import numpy as np
import pytest

from emoedge import labels


def test_fer_labels_map_by_name_not_position():
    fer = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    p = np.zeros(7)
    p[3] = 1.0  # happy
    out = labels.to_canonical_probs(p, fer)
    assert out[labels.CANONICAL.index("happy")] == 1.0
    assert out.sum() == pytest.approx(1.0)


def test_unmapped_mass_is_dropped_and_renormalised():
    out = labels.to_canonical_probs([0.5, 0.5], ["boredom", "anger"])
    assert out[labels.CANONICAL.index("angry")] == pytest.approx(1.0)


def test_unknown_label_raises():
    with pytest.raises(KeyError, match="SYNONYMS"):
        labels.to_canonical("excitement-typo")
