"""TorchScript archives (``torch.jit.save``, from ``torch.jit.script`` or ``torch.jit.trace``).

A TorchScript file is a program: loading it runs its compiled graph, like any model, so load
only models you trust. Its sub-modules take no Python forward hooks, so a layer's output is
found in the compiled graph instead: the graph is inlined, every operation there knows which
sub-module it belongs to (``getModuleHierarchy``), and a module's output is the value its
operations hand to operations outside it. A copy of the graph that also returns that value
becomes a function called with the loaded module. This uses TorchScript's internal graph API
(``torch._C``), checked against the pinned torch.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latent_atlas.threads import prefer_passive_waiting

prefer_passive_waiting()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from latent_atlas.backends.base import LayerInfo, LoadedModel  # noqa: E402
from latent_atlas.errors import ConfigError, LatentAtlasError  # noqa: E402
from latent_atlas.threads import configure_threads  # noqa: E402

_HIERARCHY = re.compile(r"([^.()]+)\([^()]*\)")


def is_torchscript(path: str | Path) -> bool:
    """True for a TorchScript archive: a zip file with a ``code/`` folder."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.split("/")[1:2] == ["code"] for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


@dataclass
class TorchScriptModel(LoadedModel):
    """A loaded ``torch.jit.ScriptModule``; any named sub-module is a layer."""

    module: Any = None
    kind: str = "torchscript"
    _functions: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)

    def layer_names(self) -> list[str]:
        return [name for name, _ in self.module.named_modules() if name]

    def sweep_layers(self) -> list[str]:
        from latent_atlas.backends.torch_module import sweep_modules

        graph = self._graph()  # (a layer that computes nothing in the graph is left out)
        found = sweep_modules(self.module)
        return [n for n in found if self._output_value(n, graph, quiet=True) is not None]

    def layers(self) -> list[LayerInfo]:
        names = self.layer_names()
        modules = dict(self.module.named_modules())
        kinds = {n: getattr(modules[n], "original_name", "") for n in names}
        shapes: dict[str, tuple[int, ...] | None] = {}
        if self.input_shape is not None and None not in self.input_shape:
            h, w, c = (int(d) for d in self.input_shape)  # type: ignore[arg-type]
            graph = self._graph()
            found = [n for n in names if self._output_value(n, graph, quiet=True) is not None]
            for n in set(names) - set(found):
                kinds[n] += " (computes nothing in the graph)"
            with torch.inference_mode():
                result = self._function(tuple(found))(self.module, torch.zeros(1, c, h, w))
            _, values = _split(result, len(found))
            for n, v in zip(found, values, strict=True):
                shapes[n] = tuple(v.shape[1:]) if isinstance(v, torch.Tensor) else None
        return [LayerInfo(n, shapes.get(n), kinds[n]) for n in names]

    def _start(self, layers: tuple[str, ...], pool: str, threads: int | None) -> None:
        configure_threads(threads)
        self._function(layers)  # finds the layers' outputs, or says why not

    def _run(self, batch: np.ndarray, layers: tuple[str, ...]) -> tuple[list[np.ndarray], Any]:
        fn = self._function(layers)
        with torch.inference_mode():
            out, values = _split(fn(self.module, torch.from_numpy(batch)), len(layers))
        for layer, value in zip(layers, values, strict=True):
            if not isinstance(value, torch.Tensor):
                raise ConfigError(f"layer {layer!r} returns {type(value).__name__}, not a tensor")
        scores = out.float().numpy() if isinstance(out, torch.Tensor) else None
        return [v.float().numpy() for v in values], scores

    # -- the graph ---------------------------------------------------------------------------

    def _graph(self) -> Any:
        return self.module.inlined_graph

    def _output_value(self, layer: str, graph: Any = None, *, quiet: bool = False) -> Any:
        """The value in ``graph`` (default: a fresh inlined copy) that ``layer`` outputs."""
        graph = graph if graph is not None else self._graph()
        path = tuple(layer.split("."))

        def inside(node: Any) -> bool:
            names = _HIERARCHY.findall(node.getModuleHierarchy() or "")
            return tuple(names[: len(path)]) == path

        found = None
        for node in graph.nodes():
            if node.kind() in ("prim::Constant", "prim::GetAttr") or not inside(node):
                continue
            for value in node.outputs():
                if any(not inside(use.user) for use in value.uses()):
                    found = value  # the last one: what the module returns
        if found is None and not quiet:
            raise ConfigError(
                f"layer {layer!r} computes nothing in the compiled graph (an Identity, or a "
                "module the forward pass does not call); choose the layer before or after it"
            )
        return found

    def _function(self, layers: tuple[str, ...]) -> Any:
        """A function of (module, input) returning (model output, *the layers' outputs)."""
        if layers not in self._functions:
            graph = self._graph().copy()
            values = [self._output_value(name, graph) for name in layers]
            ret = graph.return_node()
            result = ret.input()
            tup = graph.create("prim::TupleConstruct", [result, *values])
            tup.insertBefore(ret)
            tup.output().setType(torch._C.TupleType([result.type(), *(v.type() for v in values)]))
            ret.replaceInput(0, tup.output())
            torch._C._jit_pass_lint(graph)
            self._functions[layers] = torch._C._create_function_from_graph(
                "forward_with_layers", graph
            )
        return self._functions[layers]


def _split(result: Any, n: int) -> tuple[Any, list[Any]]:
    values = list(result)
    return values[0], values[1 : 1 + n]


def load_torchscript(
    path: str | Path, input_shape: tuple[int | None, int | None, int | None] | None = None
) -> TorchScriptModel:
    """Load a TorchScript archive on the CPU, in eval mode (this runs its compiled code)."""
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError for most problems
        text = str(exc).strip().splitlines()
        raise LatentAtlasError(
            f"{path}: not a loadable TorchScript file ({text[0] if text else type(exc).__name__})"
        ) from None
    module.eval()
    return TorchScriptModel(
        spec=str(path),
        input_shape=input_shape,
        details={"source": "TorchScript", "class": getattr(module, "original_name", "")},
        module=module,
    )
