"""The package's layers: imports point only downward, no cycles, and the configuration floor imports
no ML library (every dry run, every job's start and the SLURM submitter load it)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "src/dpo_study"
# What each layer may import from the package, besides itself.
ALLOWED = {
    "config": set(),
    "analysis": {"config"},
    "runtime": {"config"},
    "stages": {"config", "analysis", "runtime"},
}
ML_LIBRARIES = ("torch", "transformers", "trl", "peft", "datasets", "scipy", "sklearn", "unsloth", "bitsandbytes",
                "sentence_transformers", "matplotlib", "pandas")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def package_imports(path: Path) -> set[str]:
    """Every dpo_study module a file imports, at module level or inside a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import (provenance.code_version follows absolute ones)"
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {n for n in names if n in modules and n.count(".") >= 2}


def graph() -> dict[str, set[str]]:
    return {module_name(p): package_imports(p) - {module_name(p)} for p in PACKAGE.rglob("*.py")}


def test_every_module_sits_in_a_layer():
    loose = [p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]
    assert loose == [], "modules belong in a layer subpackage"
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(ALLOWED)


def test_imports_point_only_downward():
    upward = []
    for module, imported in graph().items():
        layer = module.split(".")[1]
        for name in imported:
            target = name.split(".")[1]
            if target != layer and target not in ALLOWED[layer]:
                upward.append(f"{module} -> {name}")
    assert upward == []


def test_no_import_cycles():
    edges = graph()
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_layer_test_sees_an_upward_import(tmp_path, monkeypatch):
    """The walk itself: a config module importing a stage is reported."""
    fake = tmp_path / "dpo_study"
    for layer in ALLOWED:
        (fake / layer).mkdir(parents=True)
        (fake / layer / "__init__.py").write_text("")
    (fake / "stages/train.py").write_text("")
    (fake / "config/study.py").write_text("def f():\n    from dpo_study.stages.train import x\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert graph()["dpo_study.config.study"] == {"dpo_study.stages.train"}


def test_loading_the_demo_study_imports_no_ml_library():
    code = f"""
import json, os, sys
sys.path.insert(0, {str(REPO / 'src')!r}); sys.path.insert(0, {str(REPO / 'tests')!r})
from conftest import load_demo_study
study = load_demo_study()
assert study.experiments
print(json.dumps(sorted(m for m in {ML_LIBRARIES!r} if m in sys.modules)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
