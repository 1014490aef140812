"""Atomic outputs: a file or folder appears under its name only once it is complete.

A job killed at any moment (SIGKILL, a node lost, a scheduler's time limit) leaves at most a
hidden ``.partial-<pid>.<name>`` beside the output, never a half-written output that a later run
could take as finished. Snakemake's own incomplete-output tracking covers the job as a whole; this
covers the files, also when Snakemake's metadata is gone.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_PREFIX = ".partial-"


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def partials_of(path: Path) -> list[Path]:
    """Leftovers of earlier killed writes of ``path``."""
    pattern = f"{glob.escape(str(path.parent))}/{PARTIAL_PREFIX}*.{glob.escape(path.name)}"
    return [Path(p) for p in glob.glob(pattern)]


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write (a file or a folder); rename it on success.

    The temporary name ends with the output's name, so tools that pick a format by extension
    (pandas, joblib) write the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in partials_of(path):
        remove(leftover)
    temp = path.with_name(f"{PARTIAL_PREFIX}{os.getpid()}.{path.name}")
    try:
        yield temp
        if not temp.exists():
            raise FileNotFoundError(f"nothing was written to {temp} for {path}")
        if path.is_dir():
            shutil.rmtree(path)  # os.replace cannot replace a non-empty folder
        os.replace(temp, path)
    except BaseException:
        remove(temp)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, document) -> None:
    write_text(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
