"""Backend 'trt-native': serialized TensorRT engines built with the TensorRT Python API and run with
cuda-python (no onnxruntime on the GPU path).

- INT8: built from the QDQ-INT8 ONNX (explicit quantization: the Q/DQ scales from our calibration are
  used as they are; no TensorRT calibrator). FP16: built from the FP32 ONNX with BuilderFlag.FP16.
- Dynamic face batch: one optimization profile, batch 1..16 (opt 8) by default.
- Engines and the timing cache are cached under a folder keyed by model sha256, GPU name, TensorRT and
  onnxruntime versions, precision and profile; builds hold a file lock and publish atomically.
On Jetson use JetPack's TensorRT (python3-libnvinfer), not the PyPI wheels (which are x86-64/SBSA only).
"""
from __future__ import annotations

import json
import pathlib
import shutil
import tempfile
import time
from typing import Optional

import numpy as np

from .backends import FileLock, atomic_publish_dir, atomic_write_bytes, cache_root, check_backend, make_cache_key
from .errors import InvalidInputError, ModelError


def _trt():
    check_backend("trt-native")
    import tensorrt as trt  # type: ignore
    return trt


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # type: ignore  # older cuda-python
    return cudart


def _ck(res):
    """cuda-python calls return (err, *values); raise on error, return the values."""
    err, *vals = res if isinstance(res, tuple) else (res,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return vals[0] if len(vals) == 1 else vals


def _profile_from_onnx(path, max_batch: int) -> dict:
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in m.graph.initializer}
    prof = {}
    for i in m.graph.input:
        if i.name in init:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
        if dims and dims[0] is None and all(d for d in dims[1:]):
            prof[i.name] = ((1, *dims[1:]), (min(8, max_batch), *dims[1:]), (max_batch, *dims[1:]))
        elif all(d for d in dims):
            prof[i.name] = (tuple(dims),) * 3
        else:
            raise ModelError(f"{path}: input {i.name} has dynamic dims {dims} other than batch; pass a profile")
    return prof


def engine_key(model_path, precision: str, profile: dict):
    """Cache key of an engine: model sha256, GPU name, TensorRT/ORT versions, precision, profile."""
    from .manifest import sha256_file
    prof = ",".join(f"{n}:{p[0]}/{p[1]}/{p[2]}" for n, p in sorted(profile.items()))
    return make_cache_key(sha256_file(model_path), "trt-native", precision, prof)


def engine_dir(model_path, precision: str, profile: dict, out_dir=None) -> pathlib.Path:
    key = engine_key(model_path, precision, profile)
    return (pathlib.Path(out_dir) if out_dir else cache_root()) / "trt-native" / key.dirname()


def build_engine(model_path, precision: str = "fp16", profile: Optional[dict] = None, max_batch: int = 16,
                 out_dir=None, force: bool = False, log=print) -> dict:
    """Build (or reuse) a serialized engine for ``model_path``; returns its meta dict (path, key, build time)."""
    trt = _trt()
    if precision not in ("fp32", "fp16", "int8"):
        raise InvalidInputError(f"precision {precision!r}: choose fp32, fp16 or int8")
    model_path = pathlib.Path(model_path)
    profile = profile or _profile_from_onnx(model_path, max_batch)
    final = engine_dir(model_path, precision, profile, out_dir)
    with FileLock(final.parent / (final.name + ".lock"), timeout=3600):
        if (final / "meta.json").is_file() and not force:
            return json.loads((final / "meta.json").read_text())
        tmp = pathlib.Path(tempfile.mkdtemp(dir=str(final.parent), prefix=f".{final.name}."))
        try:
            logger = trt.Logger(trt.Logger.WARNING)
            builder = trt.Builder(logger)
            flags = 0
            if int(trt.__version__.split(".")[0]) < 10:  # explicit batch is the only mode from TensorRT 10 on
                flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
            network = builder.create_network(flags)
            parser = trt.OnnxParser(network, logger)
            if not parser.parse(model_path.read_bytes()):
                errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
                raise ModelError(f"TensorRT could not parse {model_path}: {errs}")
            config = builder.create_builder_config()
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
            if precision == "fp16":
                config.set_flag(trt.BuilderFlag.FP16)
            elif precision == "int8":
                config.set_flag(trt.BuilderFlag.INT8)  # explicit QDQ quantization
            tc_path = final.parent / f"timing-{final.name.split('-')[-1]}.cache"
            cache = config.create_timing_cache(tc_path.read_bytes() if tc_path.is_file() else b"")
            config.set_timing_cache(cache, ignore_mismatch=False)
            opt_profile = builder.create_optimization_profile()
            for name, (mn, opt, mx) in profile.items():
                opt_profile.set_shape(name, mn, opt, mx)
            config.add_optimization_profile(opt_profile)
            log(f"  building TensorRT {precision} engine for {model_path.name} (profile {profile}) ...")
            t0 = time.perf_counter()
            ser = builder.build_serialized_network(network, config)
            if ser is None:
                raise ModelError(f"TensorRT failed to build an engine for {model_path} ({precision})")
            build_s = time.perf_counter() - t0
            (tmp / "model.engine").write_bytes(bytes(ser))
            atomic_write_bytes(tc_path, bytes(config.get_timing_cache().serialize()))
            meta = {"model": str(model_path), "precision": precision, "engine": str(final / "model.engine"),
                    "profile": {k: [list(s) for s in v] for k, v in profile.items()}, "build_s": build_s,
                    "tensorrt": trt.__version__, "key": engine_key(model_path, precision, profile).__dict__}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            atomic_publish_dir(tmp, final)
            log(f"  built in {build_s:.1f} s -> {final}")
            return meta
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


class TrtEngine:
    """Runs a serialized engine: ``run({input_name: array}) -> [outputs]`` (float32, host memory)."""

    def __init__(self, engine_path):
        trt = _trt()
        self.cudart = _cudart()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(pathlib.Path(engine_path).read_bytes())
        if self.engine is None:
            raise ModelError(f"could not deserialize TensorRT engine {engine_path} (built by another TensorRT "
                             "version or GPU?); rebuild it with `emoedge compile --force`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.stream = _ck(self.cudart.cudaStreamCreate())
        self._bufs: dict = {}

    def _buf(self, name, nbytes):
        ptr, size = self._bufs.get(name, (None, 0))
        if size < nbytes:
            if ptr is not None:
                _ck(self.cudart.cudaFree(ptr))
            ptr = _ck(self.cudart.cudaMalloc(nbytes))
            self._bufs[name] = (ptr, nbytes)
        return ptr

    def run(self, feeds: dict):
        cr = self.cudart
        for n in self.inputs:
            a = np.ascontiguousarray(feeds[n], dtype=np.float32)
            self.context.set_input_shape(n, a.shape)
            d = self._buf(n, a.nbytes)
            _ck(cr.cudaMemcpyAsync(d, a.ctypes.data, a.nbytes, cr.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
            self.context.set_tensor_address(n, int(d))
        outs = []
        for n in self.outputs:
            shape = tuple(self.context.get_tensor_shape(n))
            o = np.empty(shape, dtype=np.float32)
            d = self._buf(n, o.nbytes)
            self.context.set_tensor_address(n, int(d))
            outs.append((n, o, d))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        for n, o, d in outs:
            _ck(cr.cudaMemcpyAsync(o.ctypes.data, d, o.nbytes, cr.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
        _ck(cr.cudaStreamSynchronize(self.stream))
        return [o for _, o, _ in outs]

    def close(self):
        for ptr, _ in self._bufs.values():
            self.cudart.cudaFree(ptr)
        self._bufs.clear()
