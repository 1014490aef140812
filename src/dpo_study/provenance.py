"""What produced a result: library versions, the code's git commit, a hash of the settings, and
a hash of the code each workflow step runs.

The tables carry these per experiment, so that two tables can be told apart (or shown to match)
without the run that made them; the workflow passes each rule the hash of its code, so that a
change to the code re-runs exactly the jobs that run it.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# The libraries whose versions decide a trained adapter and its answers.
LIBRARIES = ("torch", "transformers", "trl", "peft", "unsloth")
# Config sections that do not shape one experiment's results (parameters come in through the
# experiment itself; questions and the results folder only arrange outputs).
NOT_RESULT_SHAPING = ("experiments", "grids", "defaults", "questions", "results")
# Imported libraries whose version cannot change a result: progress bars, config parsing and
# checking, downloads, the workflow engine.
NOT_RESULT_SHAPING_LIBRARIES = ("tqdm", "yaml", "jsonschema", "huggingface_hub", "snakemake")
PACKAGE = Path(__file__).resolve().parent
# How a job runs (the Snakemake bridge, the GPU worker and allocator), not what it computes: not
# followed, so an edit there re-runs nothing. The stage a script names is (``call("module:function")``).
EXECUTION_MODULES = ("dpo_study.smk", "dpo_study.worker", "dpo_study.worker_process", "dpo_study.gpus")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(code_file: str | Path = __file__) -> str:
    """The commit of the checkout that tracks ``code_file``, "+dirty" when tracked files are changed.

    "unknown (not a git checkout)" when the code is not tracked by git (an installed package, an
    exported archive), rather than the commit of some unrelated enclosing repository.
    """
    code_file = Path(code_file).resolve()

    def git(*args) -> str:
        return subprocess.run(
            ["git", "-C", str(code_file.parent), *args],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()

    try:
        git("ls-files", "--error-unmatch", code_file.name)
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + ("+dirty" if dirty else "")


def record() -> dict:
    """What a job records about the code that ran it."""
    return {"git_commit": git_commit(), **{f"{name}_version": v for name, v in library_versions().items()}}


def file_sha256(path: str | Path) -> str:
    stat = Path(path).stat()
    return _file_sha256(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@functools.cache
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    """Once per file version: the workflow hashes the data files for every experiment."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def settings_hash(settings) -> str:
    """A short, stable hash of JSON-able settings (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def experiment_config_hash(params: dict, config: dict) -> str:
    """The hash of everything in the config that shapes one experiment's results.

    Its parameters, every shared section (model, training, generation, judge, ... including
    sections added later), and the contents of its data files, so that an edited train.json
    gives a new hash under the same file name.
    """
    shared = {k: v for k, v in config.items() if k not in NOT_RESULT_SHAPING}
    if "software" in shared:  # where the GPU jobs run (a resident worker or not) does not shape results
        shared["software"] = {k: v for k, v in shared["software"].items()
                              if k not in ("gpu_worker", "worker_idle_seconds")}
    data = config.get("data", {})
    files = [data.get("train"), data.get("test"), *data.get("probes", [])]
    contents = {str(f): file_sha256(f) for f in files if f and Path(f).is_file()}
    return settings_hash({"params": params, "config": shared, "data_files": contents})


def code_version(script: str | Path, package: Path = PACKAGE) -> str:
    """A short hash of the code that a workflow script runs, for its rule's params.

    It covers the script, every module of ``package`` that it imports, transitively (found in
    the source, imports inside functions too), the Python version, and the versions of the other
    libraries those modules import (see NOT_RESULT_SHAPING_LIBRARIES). Code is hashed as its
    syntax tree without docstrings: an edit of a comment, a docstring or the layout gives the
    same hash; a touched file too.
    """
    modules, libraries = imported_code(Path(script).resolve(), package)
    return settings_hash({
        "code": {name: code_digest(path) for name, path in sorted(modules.items())},
        "python": platform.python_version(),
        "libraries": {name: distribution_version(name) for name in sorted(libraries)},
    })


def imported_code(script: Path, package: Path = PACKAGE) -> tuple[dict[str, Path], set[str]]:
    """({module name: file} of the script and the package modules it reaches, {other libraries})."""
    modules: dict[str, Path] = {"script": script}
    libraries: set[str] = set()
    pending = [script]
    while pending:
        for name in imports(pending.pop(), package.name):
            top = name.split(".")[0]
            if top == package.name:
                if name in EXECUTION_MODULES or name.rpartition(".")[0] in EXECUTION_MODULES:
                    continue
                path = package_module(name, package)
                if path and name not in modules:
                    modules[name] = path
                    pending.append(path)
            elif top not in sys.stdlib_module_names and top not in NOT_RESULT_SHAPING_LIBRARIES:
                libraries.add(top)
    return modules, libraries


def imports(path: Path, package_name: str) -> tuple[str, ...]:
    """The modules a file imports, by absolute name (``from dpo_study import x`` gives dpo_study.x)."""
    return _imports(path.read_text(encoding="utf-8"), package_name)


# Each source is parsed once (several rules run the same modules); keyed by content, not by file.
@functools.cache
def _imports(source: str, package_name: str) -> tuple[str, ...]:
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: within the package
                module = ".".join(filter(None, (package_name, module)))
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str) and re.fullmatch(r"[\w.]+:\w+", node.args[0].value)):
            names.append(node.args[0].value.partition(":")[0])  # call("dpo_study.train:train_adapter", ...)
    return tuple(names)


def package_module(name: str, package: Path) -> Path | None:
    """The file of a module of ``package``, None for a name that is not one (a function, a class)."""
    parts = name.split(".")[1:]
    candidates = [package.joinpath(*parts[:-1], f"{parts[-1]}.py")] if parts else []
    for path in (*candidates, package.joinpath(*parts, "__init__.py")):
        if path.is_file():
            return path
    return None


def code_digest(path: Path) -> str:
    return _code_digest(path.read_text(encoding="utf-8"))


@functools.cache
def _code_digest(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode("utf-8")).hexdigest()


def distribution_version(module: str) -> str:
    names = distributions().get(module, [])
    return ",".join(f"{name}=={metadata.version(name)}" for name in sorted(set(names))) or "not installed"


@functools.cache
def distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()
