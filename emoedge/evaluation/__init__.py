"""Evaluation commands (`emoedge eval MODALITY`); one module per modality exposing
``add_arguments(parser)`` and ``main(args) -> int``."""
