"""`emoedge eval MODALITY --data FILE`: accuracy, macro-F1, per-class recall and the confusion matrix of a
bundled model on a labelled data file (face: FER2013-style .npz, voice: speech .npz, text: CARER or
GoEmotions). Each modality lives in emoedge/evaluation/<modality>.py."""
from __future__ import annotations

import importlib

MODALITIES = ("face", "voice", "text")


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a bundled model on a labelled data file",
                       description=__doc__)
    msub = p.add_subparsers(dest="modality", metavar="MODALITY")
    for name in MODALITIES:
        try:
            mod = importlib.import_module(f"emoedge.evaluation.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"emoedge.evaluation.{name}":
                continue
            raise
        doc = (mod.__doc__ or "").strip()
        mp = msub.add_parser(name, help=doc.splitlines()[0] if doc else None, description=doc or None)
        mod.add_arguments(mp)
        mp.set_defaults(func=mod.main)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
