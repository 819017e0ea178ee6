"""The layering rules of docs/ARCHITECTURE.md, checked."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "latent_atlas"
ROOT = SRC.parents[1]

# modules that must work without torch (the map side of the pipeline)
TORCH_FREE = [
    "atlas",
    "plotting",
    "metrics",
    "reducers",
    "latent",
    "runs",
    "fileio",
    "datasets",
    "config",
    "compare",
    "maps",
    "jitcache",
    "palette",
    "sampling",
    "viewer",
    "preprocess",
]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", TORCH_FREE)
def test_map_side_never_imports_torch(module):
    paths = (
        [SRC / f"{module}.py"]
        if (SRC / f"{module}.py").exists()
        else sorted((SRC / module).glob("*.py"))
    )
    for path in paths:
        bad = {m for m in imports_of(path) if m == "torch" or m.startswith("torch.")}
        bad |= {
            m
            for m in imports_of(path)
            if m.split(".")[-1] in ("models", "training", "activations", "pipeline", "cli")
            and m.startswith("latent_atlas")
        }
        assert not bad, f"{path.name} imports {bad}"


def test_importing_the_package_does_not_load_torch():
    code = "import latent_atlas, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_module_is_in_the_architecture_doc():
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    for path in SRC.rglob("*.py"):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        assert path.stem in doc, f"{path.relative_to(SRC)} is not described in ARCHITECTURE.md"


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    out = subprocess.run(
        [ruff, "check", "src", "tests", "bench"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
