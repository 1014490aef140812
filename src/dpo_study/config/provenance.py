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
import os
import platform
import re
import subprocess
import sys
import tempfile
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
PACKAGE = Path(__file__).resolve().parents[1]  # dpo_study/
# How a job runs (the Snakemake bridge, the GPU worker and allocator), not what it computes: not
# followed, so an edit there re-runs nothing. The stage a script names is (``call("module:function")``).
EXECUTION_MODULES = ("dpo_study.runtime.smk", "dpo_study.runtime.worker", "dpo_study.runtime.worker_process", "dpo_study.runtime.gpus")


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
    if "software" in shared:  # where the GPU jobs run (a resident worker or not, sharing a GPU) does not shape results
        shared["software"] = {k: v for k, v in shared["software"].items()
                              if k not in ("gpu_worker", "worker_idle_seconds", "jobs_per_gpu")}
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
    return _analysis(path.read_text(encoding="utf-8"), package_name)[0]


# What the analysis of a source gave, by the source's hash, and the libraries' versions, by what is
# installed: a dry run hashes the code of every rule (~70 modules, a second of syntax trees and
# package metadata); with this file only an edited module is parsed again.
ANALYSIS_CACHE = Path(tempfile.gettempdir(), f"dpo-study-{os.getuid()}",
                      f"code-analysis-py{sys.version_info[0]}.{sys.version_info[1]}.json")


@functools.cache
def _analysis_cache() -> dict:
    try:
        if ANALYSIS_CACHE.parent.stat().st_uid != os.getuid():  # a folder someone else made: not ours to trust
            return {}
        cached = json.loads(ANALYSIS_CACHE.read_text(encoding="utf-8"))
        return cached if isinstance(cached, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_analysis_cache(cache: dict) -> None:
    try:
        ANALYSIS_CACHE.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if ANALYSIS_CACHE.parent.stat().st_uid != os.getuid():
            return
        temp = ANALYSIS_CACHE.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(cache), encoding="utf-8")
        os.replace(temp, ANALYSIS_CACHE)  # whole or not at all, whoever writes last
    except OSError:
        pass  # a cache only: the next run parses again


# Each source is parsed once per process (and once per content, across runs, through the cache
# file), for its imports and its digest together; keyed by content, not by file.
@functools.cache
def _analysis(source: str, package_name: str = PACKAGE.name) -> tuple[tuple[str, ...], str]:
    key = hashlib.sha256(f"{package_name}\0{source}".encode("utf-8")).hexdigest()
    cache = _analysis_cache()
    hit = cache.get(key)
    if isinstance(hit, list) and len(hit) == 2:
        return tuple(hit[0]), hit[1]
    result = _analyse(source, package_name)
    cache[key] = [list(result[0]), result[1]]
    _save_analysis_cache(cache)
    return result


def _analyse(source: str, package_name: str) -> tuple[tuple[str, ...], str]:
    tree = ast.parse(source)
    names = []
    for node in ast.walk(tree):
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
            names.append(node.args[0].value.partition(":")[0])  # call("dpo_study.stages.train:train_adapter", ...)
    # The digest: the syntax tree without docstrings (removed after the walk above, which needs none).
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tuple(names), hashlib.sha256(ast.dump(tree).encode("utf-8")).hexdigest()


def package_module(name: str, package: Path) -> Path | None:
    """The file of a module of ``package``, None for a name that is not one (a function, a class)."""
    parts = name.split(".")[1:]
    candidates = [package.joinpath(*parts[:-1], f"{parts[-1]}.py")] if parts else []
    for path in (*candidates, package.joinpath(*parts, "__init__.py")):
        if path.is_file():
            return path
    return None


def code_digest(path: Path) -> str:
    return _analysis(path.read_text(encoding="utf-8"), PACKAGE.name)[1]


@functools.cache
def installed() -> str:
    """A fingerprint of the installed distributions: their dist-info folders carry name and version."""
    names = []
    for folder in sys.path:
        try:
            names += [n for n in os.listdir(folder or ".") if n.endswith((".dist-info", ".egg-info"))]
        except OSError:
            continue
    return hashlib.sha256("\n".join(sorted(names)).encode("utf-8")).hexdigest()[:16]


@functools.cache  # installed versions do not change during a run; a lookup scans every distribution
def distribution_version(module: str) -> str:
    key = f"version:{installed()}:{module}"
    cache = _analysis_cache()
    if isinstance(cache.get(key), str):
        return cache[key]
    names = distributions().get(module, [])
    cache[key] = ",".join(f"{name}=={metadata.version(name)}" for name in sorted(set(names))) or "not installed"
    _save_analysis_cache(cache)
    return cache[key]


@functools.cache
def distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()
