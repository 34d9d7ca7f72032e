"""NVIDIA Triton Inference Server support: export the bundled models as a Triton model repository
(:mod:`emoedge.triton.export`, ``emoedge export triton``) and run an engine's model calls on a Triton
server over gRPC (:mod:`emoedge.triton.client`, ``Engine(backend="triton", triton_url=...)``).

Stateful pieces (face tracking, fusion, the voice ring buffer and the VAD recurrent state) always stay
in emoedge on the client; only stateless model calls cross the network. Silero VAD qualifies because its
recurrent state is an explicit input/output of the graph (``state`` -> ``stateN``): the client sends its
per-stream state with every 32 ms chunk and keeps the returned one.
"""
from __future__ import annotations

from .export import ExportOptions, ExportResult, export_repository, graph_io

__all__ = ["ExportOptions", "ExportResult", "export_repository", "graph_io"]
