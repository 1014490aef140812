"""The configuration floor's one error and how its messages name where a value came from.

Every bad input ends in a ``ConfigError`` whose message names the source (a config file, the command
line's ``--config``, a data file with its row), the field and what is allowed there.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

COMMAND_LINE = "the command line's --config"


class ConfigError(ValueError):
    """A config or input file that the study cannot run with; the message names the field."""


def render(value, limit: int = 60) -> str:
    """A value as JSON text, cut to ``limit`` characters (invisible characters escaped, so they show)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    text = "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii") for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind_of(value) -> str:
    """A value's JSON type in words, for 'got ...'."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if value is None:
        return "null"
    return "a number"


PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,60}")


def location(parts, whole: str = "the config") -> str:
    """``experiments[0].beta`` for ``["experiments", 0, "beta"]``; a key of other characters in
    brackets as JSON text (``data["a\\nb"]``), so that it shows on one line."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{render(part)}]"
    return out or whole


def lookup(document, parts):
    """(value, found) at ``parts`` of a nested document."""
    for part in parts:
        try:
            document = document[part]
        except (KeyError, IndexError, TypeError):
            return None, False
    return document, True


class Sources:
    """Where each value of the merged config came from, in Snakemake's priority: the command line's
    ``--config`` first, then the config files (the last ``--configfile`` first). Built from the
    documents as read once (reading.read_config_files), so that naming a source reads no file again."""

    def __init__(self, documents=(), command_line: dict | None = None):
        self.documents = [(str(path), document) for path, document in documents]
        self.command_line = dict(command_line or {})

    @property
    def first(self) -> str:
        """The source of a problem with the config as a whole: the highest-priority config file."""
        return self.documents[0][0] if self.documents else "config"

    def of(self, parts) -> str:
        """The source that sets the value at ``parts`` (or, for a value no source sets, the file of
        its nearest parent that is set, else the first file)."""
        parts = list(parts)
        for depth in range(len(parts), 0, -1):
            if lookup(self.command_line, parts[:depth])[1]:
                return COMMAND_LINE
            for path, document in self.documents:
                if lookup(document, parts[:depth])[1]:
                    return path
        return self.first


@contextlib.contextmanager
def named(source: str, *own_sources):
    """Prefix ``source`` to a ConfigError raised inside that names neither it nor one of ``own_sources``
    (a data file's errors name the data file, not the config file that names it)."""
    try:
        yield
    except ConfigError as error:
        text = str(error)
        if text.startswith((source, *(str(s) for s in own_sources))):
            raise
        raise type(error)(f"{source}: {text}") from None


def path_kind(path, what: str) -> str | None:
    """"dir", "file", "other" or None (nothing there) for a path the config names; a path the system
    cannot look up (a name too long, a NUL byte) is the project's error, not an OSError."""
    try:
        path = Path(path)
        if path.is_dir():
            return "dir"
        if path.is_file():
            return "file"
        return "other" if path.exists() else None
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"{what} {render(str(path))}: cannot be looked up ({reason})") from None
