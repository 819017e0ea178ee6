"""ONNX models, run with ONNX Runtime on the CPU (extra ``onnx``; no torch needed).

Every node is a layer, by its name (or its first output's name when it has none), and so is
every tensor by its own name. Models exported from PyTorch also name their modules: node names
``/dense/linear/Gemm`` (``torch.onnx.export(dynamo=False)``) or the ``namespace`` metadata of
the dynamo exporter give the layers ``dense`` and ``dense.linear``, whose output is the last
value the module hands on, as with the PyTorch module itself; the listing then shows module
names in place of the nodes that make their outputs. Other exporters' slash-separated scopes
(``model/block1/conv``) become layers ``model/block1`` and ``model``. Exporters fold
BatchNorm into the convolution before it, so such a module may have no output of its own.

To read a layer, its tensor is added to the graph's outputs (with the ``onnx`` package) and
the model runs in ONNX Runtime; shapes for ``latent-atlas layers`` come from ONNX shape
inference. Models over 2 GB (external data) are not supported.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from latent_atlas.backends.base import LayerInfo, LoadedModel
from latent_atlas.errors import ConfigError, LatentAtlasError, require
from latent_atlas.threads import available_cores

# ONNX TensorProto element types that can carry image input
_FLOAT_TYPES = {1: np.float32, 10: np.float16, 11: np.float64}


@dataclass
class OnnxModel(LoadedModel):
    """An ONNX graph with one image input."""

    proto: Any = None  # onnx.ModelProto
    kind: str = "onnx"
    _targets: dict[str, str] = field(default_factory=dict, repr=False)  # layer → tensor
    _listed: list[tuple[str, str]] = field(default_factory=list, repr=False)  # (layer, op)
    _sessions: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)
    _threads: int | None = None

    def __post_init__(self) -> None:
        graph = self.proto.graph
        self._listed, self._targets = _layers_of(graph)
        inp = _image_input(graph)
        self._input_name = inp.name
        self._input_dtype = _FLOAT_TYPES[inp.type.tensor_type.elem_type]
        dims = _dims(inp)
        self._fixed_batch = dims[0] if dims and dims[0] else None  # e.g. exported with batch 1
        self._output_name = graph.output[0].name

    def layer_names(self) -> list[str]:
        return [name for name, _ in self._listed]

    def check_layer(self, layer: str) -> str:
        if layer in self._targets:  # listed layers and raw tensor names
            return layer
        return super().check_layer(layer)

    def layers(self) -> list[LayerInfo]:
        shapes = _inferred_shapes(self.proto, self._input_name, self.input_shape, self.layout)
        return [LayerInfo(name, shapes.get(self._targets[name]), op) for name, op in self._listed]

    def _start(self, layers: tuple[str, ...], pool: str, threads: int | None) -> None:
        if threads != self._threads:
            self._sessions.clear()
            self._threads = threads

    def _run(self, batch: np.ndarray, layers: tuple[str, ...]) -> tuple[list[np.ndarray], Any]:
        tensors = tuple(dict.fromkeys(self._targets[layer] for layer in layers))
        session = self._session(tensors)
        step = self._fixed_batch or len(batch)
        outs, values = [], []
        for start in range(0, len(batch), step):
            chunk = batch[start : start + step].astype(self._input_dtype)
            out, *found = session.run([self._output_name, *tensors], {self._input_name: chunk})
            outs.append(out)
            values.append(dict(zip(tensors, found, strict=True)))
        scores = all(isinstance(o, np.ndarray) and o.ndim for o in outs)
        features = [
            np.asarray(np.concatenate([v[self._targets[layer]] for v in values]), dtype=np.float32)
            for layer in layers
        ]
        return features, np.concatenate(outs) if scores else None

    def _session(self, tensors: tuple[str, ...]) -> Any:
        if tensors not in self._sessions:
            onnx = require("onnx", "onnx", "onnx", "running ONNX models")
            ort = require("onnxruntime", "onnxruntime", "onnx", "running ONNX models")
            model = onnx.ModelProto()
            model.CopyFrom(self.proto)
            known = {v.name: v for v in model.graph.value_info}
            for tensor in tensors:
                if tensor not in {o.name for o in model.graph.output}:
                    info = known.get(tensor) or onnx.helper.make_empty_tensor_value_info(tensor)
                    model.graph.output.append(info)
            options = ort.SessionOptions()
            options.intra_op_num_threads = int(self._threads or available_cores())
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            try:
                self._sessions[tensors] = ort.InferenceSession(
                    model.SerializeToString(), options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime raises its own exception types
                raise LatentAtlasError(
                    f"{self.spec}: ONNX Runtime cannot run this model ({_first_line(exc)})"
                ) from None
        return self._sessions[tensors]


def _image_input(graph: Any) -> Any:
    initialisers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    if len(inputs) != 1:
        raise ConfigError(
            f"the ONNX model has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
            "latent-atlas feeds one image tensor"
        )
    elem = inputs[0].type.tensor_type.elem_type
    if elem not in _FLOAT_TYPES:
        raise ConfigError(
            f"the ONNX model's input {inputs[0].name!r} has element type {elem}; "
            "latent-atlas feeds float images (float32, float16 or float64)"
        )
    return inputs[0]


def _dims(value_info: Any) -> tuple[int | None, ...] | None:
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)


def _layout_and_shape(
    dims: tuple[int | None, ...] | None,
) -> tuple[str, tuple[int | None, int | None, int | None] | None]:
    """The input's layout and (H, W, C) from its declared N×C×H×W or N×H×W×C dims."""
    if dims is None or len(dims) != 4:
        return "nchw", None
    _, a, b, c = dims
    if c in (1, 3) and a not in (1, 3):
        return "nhwc", (a, b, c)
    return "nchw", (b, c, a)


def _scope_of(node: Any) -> tuple[tuple[str, ...], str]:
    """The module path of a node and how its names are joined ("." or "/")."""
    for prop in node.metadata_props:
        if prop.key == "namespace":  # dynamo exporter: ": Root/dense: Dense/dense.linear: …/op"
            parts = [seg.split(":", 1)[0].strip() for seg in prop.value.split("/")]
            modules = [p for p in parts[1:-1] if p]
            return (tuple(modules[-1].split(".")) if modules else ()), "."
    name = node.name
    if "/" not in name:
        return (), "."
    if name.startswith("/"):  # torch.onnx.export(dynamo=False): /dense/linear/Gemm
        return tuple(p for p in name.split("/")[1:-1] if p), "."
    return tuple(p for p in name.split("/")[:-1] if p), "/"


def _layers_of(graph: Any) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Listed layers (name, op) in graph order, and every accepted name → its tensor."""
    nodes = [n for n in graph.node if n.op_type != "Constant" and any(n.output)]
    scopes = [_scope_of(n) for n in nodes]
    graph_outputs = {o.name for o in graph.output}
    consumers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(i)
    # a module's output: the last tensor made inside it and used outside it
    scope_out: dict[tuple[str, ...], tuple[int, str, str]] = {}
    for i, (node, (path, sep)) in enumerate(zip(nodes, scopes, strict=True)):
        for k in range(1, len(path) + 1):
            prefix = path[:k]
            for out in node.output:
                if not out:
                    continue
                outside = out in graph_outputs or any(
                    scopes[j][0][:k] != prefix for j in consumers.get(out, [])
                )
                if outside:
                    scope_out[prefix] = (i, out, sep)
    after: dict[int, list[tuple[str, str]]] = {}
    for prefix, (i, out, sep) in scope_out.items():
        after.setdefault(i, []).append((sep.join(prefix), out))
    module_outputs = {out for out, _ in (v[1:] for v in scope_out.values())}
    listed: list[tuple[str, str]] = []
    targets: dict[str, str] = {}
    for i, node in enumerate(nodes):
        name = node.name or node.output[0]
        if name not in targets:
            targets[name] = node.output[0]
            if node.output[0] not in module_outputs:  # else listed by its module's name
                listed.append((name, node.op_type))
        for scope, out in sorted(after.get(i, []), key=lambda t: -len(t[0])):
            if scope not in targets:
                listed.append((scope, node.op_type))
                targets[scope] = out
    for node in nodes:  # raw tensor names are accepted too, not listed
        for out in node.output:
            if out:
                targets.setdefault(out, out)
    return listed, targets


def _inferred_shapes(
    proto: Any,
    input_name: str,
    input_shape: tuple[int | None, int | None, int | None] | None,
    layout: str,
) -> dict[str, tuple[int | None, ...] | None]:
    """Per-sample shapes of every tensor, by ONNX shape inference on the given input size."""
    onnx = require("onnx", "onnx", "onnx", "reading ONNX models")
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    if input_shape is not None:
        h, w, c = input_shape
        sizes = (c, h, w) if layout == "nchw" else (h, w, c)
        for inp in model.graph.input:
            if inp.name == input_name:
                for dim, size in zip(inp.type.tensor_type.shape.dim[1:], sizes, strict=False):
                    if size is not None:
                        dim.dim_value = int(size)
    with contextlib.suppress(Exception):  # inference is a nicety: shapes stay unknown
        model = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, tuple[int | None, ...] | None] = {}
    for info in [*model.graph.value_info, *model.graph.output]:
        dims = _dims(info)
        shapes[info.name] = None if dims is None else dims[1:]
    return shapes


def load_onnx(
    path: str | Path, input_shape: tuple[int | None, int | None, int | None] | None = None
) -> OnnxModel:
    """Read an ONNX file; ``input_shape`` (H, W, C) fills in what the file leaves open."""
    onnx = require("onnx", "onnx", "onnx", "reading ONNX models")
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except FileNotFoundError:
        raise LatentAtlasError(f"model file {path} does not exist") from None
    except Exception as exc:  # protobuf decode errors, checker errors
        raise LatentAtlasError(f"{path}: not a valid ONNX model ({_first_line(exc)})") from None
    layout, declared = _layout_and_shape(_dims(_image_input(proto.graph)))
    shape = declared
    if input_shape is not None:
        shape = tuple(  # type: ignore[assignment]
            given if given is not None else (declared[i] if declared else None)
            for i, given in enumerate(input_shape)
        )
    return OnnxModel(
        spec=str(path),
        input_shape=shape,
        layout=layout,
        details={
            "source": "ONNX",
            "opset": max(
                (o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                default=None,
            ),
        },
        proto=proto,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
