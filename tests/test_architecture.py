"""The layering rules of docs/ARCHITECTURE.md ("## Layers"), checked.

The Layers table is the one statement of the order: each row is a layer (lowest first), its
modules (dotted names relative to the package; a subpackage's ``__init__`` is the subpackage's
name) and those of its modules that load torch when imported. Here:

* every module file is in the table and every name in the table is a module file;
* no module's source imports a module of a higher layer (imports inside functions count;
  imports under ``if TYPE_CHECKING:`` never run and are exempt), nor the package root, which is
  the public facade (``latent_atlas._version`` is allowed);
* every module, imported alone in a fresh interpreter, loads no module of a higher layer, and
  loads torch exactly when the table says so.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "latent_atlas"
ROOT = SRC.parents[1]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
PACKAGE = "latent_atlas"
# the facade: exempt from the table, importable from inside the package only as `_version`
FACADE = ""
# importing it runs the command line: checked from its source only
NOT_IMPORTED = {"__main__"}
# optional extras: a module that cannot be imported without one is skipped, not failed
OPTIONAL = {
    "onnx", "onnxruntime", "keras", "dask", "distributed", "openTSNE", "umap", "umap-learn",
    "pacmap", "pynndescent", "numba",
}  # fmt: skip


@dataclass(frozen=True)
class Layers:
    layer: dict[str, int]  # module -> layer number
    name: dict[int, str]  # layer number -> "3 model backends"
    torch: frozenset[str]  # modules that load torch when imported

    def describe(self, module: str) -> str:
        if module == FACADE:
            return f"the package root {PACKAGE} (the facade)"
        if module not in self.layer:
            return f"{module} (not in the Layers table)"
        return f"{module} (layer {self.name[self.layer[module]]})"


def read_layers() -> Layers:
    """The Layers table of docs/ARCHITECTURE.md."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"^## Layers\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "docs/ARCHITECTURE.md has no '## Layers' section"
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in match.group(1).splitlines()
        if line.lstrip().startswith("|")
    ]
    assert rows and [c.lower() for c in rows[0]] == ["layer", "modules", "loads torch"], (
        f"the Layers table's header must be | layer | modules | loads torch |, not {rows[:1]}"
    )
    assert rows[1] and all(set(c) <= set("-: ") for c in rows[1]), "no |---| line"
    layer: dict[str, int] = {}
    names: dict[int, str] = {}
    torch: set[str] = set()
    for row in rows[2:]:
        assert len(row) == 3, f"a Layers row has {len(row)} cells, not 3: {row}"
        number = re.match(r"\d+", row[0])
        assert number, f"a Layers row does not start with its layer number: {row}"
        n = int(number.group())
        assert not names or n > max(names), f"layers are listed lowest first: {row[0]} is not"
        names[n] = row[0]
        modules = re.findall(r"`([^`]+)`", row[1])
        assert modules, f"layer {row[0]} lists no modules"
        for module in modules:
            assert module not in layer, f"{module} is listed twice in the Layers table"
            layer[module] = n
        loaders = re.findall(r"`([^`]+)`", row[2])
        assert loaders or row[2].lower() == "none", (
            f"layer {row[0]}: 'loads torch' names modules in backticks or says none, not {row[2]!r}"
        )
        outside = set(loaders) - set(modules)
        assert not outside, f"layer {row[0]}: 'loads torch' names modules of other rows {outside}"
        torch |= set(loaders)
    return Layers(layer, names, frozenset(torch))


def module_files() -> dict[str, Path]:
    """Every module of the package (but its root) by dotted name relative to the package."""
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:  # the root __init__ is the facade
            out[".".join(parts)] = path
    return out


def test_layers_cover_every_module():
    listed = set(read_layers().layer)
    files = set(module_files())
    missing = sorted(files - listed)
    stale = sorted(listed - files)
    assert not missing and not stale, (
        f"module files missing from the Layers table of docs/ARCHITECTURE.md: {missing}; "
        f"names in the table with no module file: {stale}"
    )


# --- static: what the source imports ----------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST):
    """Every import statement, also inside functions, but not under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "import_module")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node  # importlib.import_module("latent_atlas.x")
        stack.extend(ast.iter_child_nodes(node))


def _resolve(dotted: str, known: set[str]) -> str | None:
    """The table module an absolute ``latent_atlas.…`` name imports: the longest known prefix.

    ``None`` for names outside the package; ``FACADE`` for the root; the name itself (relative
    to the package) when it is no module at all.
    """
    if dotted != PACKAGE and not dotted.startswith(PACKAGE + "."):
        return None
    parts = dotted.split(".")[1:]
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in known:
            return name
    return ".".join(parts) if parts else FACADE


def imported_modules(module: str, path: Path, known: set[str]) -> dict[str, list[str]]:
    """Table modules (and the facade) that ``module``'s source imports -> the lines doing it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines = path.read_text(encoding="utf-8").splitlines()
    is_package = path.name == "__init__.py"
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: dict[str, list[str]] = {}

    def add(target: str | None, node: ast.AST) -> None:
        if target is None:
            return
        where = f"{path.relative_to(SRC.parent)}:{node.lineno}: {lines[node.lineno - 1].strip()}"
        # importing a.b.c also runs a and a.b (those above the importer are loaded anyway)
        parts = target.split(".") if target else []
        for end in range(1, len(parts) + 1):
            name = ".".join(parts[:end])
            if end == len(parts) or (name in known and not module.startswith(name + ".")):
                lines_of = found.setdefault(name, [])
                if where not in lines_of:
                    lines_of.append(where)
        if not target and where not in found.setdefault(FACADE, []):
            found[FACADE].append(where)

    for node in sorted(_import_nodes(tree), key=lambda node: node.lineno):
        if isinstance(node, ast.Call):
            add(_resolve(node.args[0].value, known), node)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                add(_resolve(alias.name, known), node)
        else:
            if node.level:  # relative: from the importer's package upwards
                if node.level - 1 > len(package):
                    raise AssertionError(f"{path}:{node.lineno}: relative import above the root")
                base = package[: len(package) - (node.level - 1)]
                absolute = ".".join([PACKAGE, *base, *([node.module] if node.module else [])])
            else:
                absolute = node.module or ""
            base_target = _resolve(absolute, known)
            if base_target is None:
                continue
            for alias in node.names:
                sub = f"{base_target}.{alias.name}" if base_target else alias.name
                add(sub if sub in known else base_target, node)
    return found


def test_no_module_imports_a_higher_layer():
    layers = read_layers()
    known = set(layers.layer)
    problems = []
    for module, path in module_files().items():
        if module not in layers.layer:
            continue  # test_layers_cover_every_module reports it
        own = layers.layer[module]
        for target, where in sorted(imported_modules(module, path, known).items()):
            if target == module:
                continue
            if target == FACADE:
                bad = "imports the package root, the facade (only latent_atlas._version is allowed)"
            elif target not in known:
                bad = f"imports {target}, which is no module in the Layers table"
            elif layers.layer[target] > own:
                bad = f"imports {layers.describe(target)}, a higher layer"
            else:
                continue
            problems.append(f"{layers.describe(module)} {bad}:\n    " + "\n    ".join(where))
    assert not problems, f"{len(problems)} imports break the layers:\n" + "\n".join(problems)


# --- runtime: what importing each module loads -------------------------------------------------

PROBE = """
import importlib, json, sys
name = sys.argv[1]
try:
    importlib.import_module("latent_atlas." + name)
except ImportError as exc:  # also errors.MissingDependencyError, with .package
    missing = (getattr(exc, "package", None) or exc.name or "").split(".")[0]
    if missing and missing != "latent_atlas":
        print(json.dumps({"missing": missing, "error": repr(exc)}))
        raise SystemExit(0)
    raise
print(json.dumps({
    "loaded": sorted(m for m in sys.modules if m.startswith("latent_atlas.")),
    "torch": "torch" in sys.modules,
}))
"""


def _probe(module: str) -> tuple[str, subprocess.CompletedProcess]:
    command = [sys.executable, "-c", PROBE, module]
    try:
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        out = subprocess.CompletedProcess(command, -1, "", "the import took over 300 s")
    return module, out


# one interpreter per module (63 today), 4 at a time: about 20 s on a quiet 2-core machine, 40-100 s
# while other tests run beside it
@pytest.mark.slow
def test_importing_each_module_loads_only_lower_layers_and_torch_as_documented():
    layers = read_layers()
    present = set(module_files())
    modules = sorted(m for m in layers.layer if m in present and m not in NOT_IMPORTED)
    # the slowest first (torch, then the higher layers, which load more), so the pool ends together
    modules.sort(key=lambda m: (m not in layers.torch, -layers.layer[m]))
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_probe, modules))
    problems, skipped = [], []
    for module, out in results:
        if out.returncode != 0:
            problems.append(f"importing {module} fails:\n{out.stderr.strip()[-2000:]}")
            continue
        report = json.loads(out.stdout.strip().splitlines()[-1])
        if "missing" in report:
            if report["missing"] in OPTIONAL:
                skipped.append(f"{module} (needs {report['missing']})")
            else:
                problems.append(f"importing {module} fails: {report['error']}")
            continue
        own = layers.layer[module]
        loaded = [name.removeprefix(PACKAGE + ".") for name in report["loaded"]]
        unknown = [name for name in loaded if name not in layers.layer]
        higher = [name for name in loaded if layers.layer.get(name, -1) > own]
        if unknown:
            problems.append(f"importing {module} loads modules not in the Layers table: {unknown}")
        if higher:
            problems.append(
                f"importing {layers.describe(module)} loads higher layers: "
                + ", ".join(f"{name} ({layers.layer[name]})" for name in higher)
            )
        documented = module in layers.torch
        if report["torch"] and not documented:
            problems.append(f"importing {module} loads torch; the Layers table says it does not")
        elif documented and not report["torch"]:
            problems.append(f"importing {module} does not load torch; the Layers table says so")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
    if skipped:
        pytest.skip(f"all other modules pass; not importable without an extra: {skipped}")


def test_importing_the_package_does_not_load_torch():
    code = (
        "import json, sys, latent_atlas; "
        "print(json.dumps([sorted(m for m in sys.modules if m.startswith('latent_atlas')), "
        "'torch' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, torch = json.loads(out.stdout)
    assert loaded == ["latent_atlas", "latent_atlas._version"]
    assert not torch


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    out = subprocess.run(
        [ruff, "check", "src", "tests", "bench"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
