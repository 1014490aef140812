"""Reading the files users write, strictly and with bounded work, so that bad input says so at once.

- YAML: no aliases (a "billion laughs" file expands to gigabytes when walked), no duplicate keys
  (the last one would win silently); JSON: no duplicate keys.
- Every document is walked once with a cap on its nodes, and numbers must be finite (YAML's `.nan`
  and `.inf` pass jsonschema's range checks, since every comparison with NaN is false).
- Texts that reach a chat template must not carry its control tokens (``<|eot_id|>`` ...): they
  would become real turn boundaries in training and generation.
Each error names the file (and row, field) and what is allowed.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import yaml

from dpo_study.config.validation import ConfigError

MAX_NODES = 200_000  # values in one document; the bundled files have a few thousand

# Chat-template control tokens of the common families: Llama-3, ChatML (Qwen), Llama-2/Mistral,
# Gemma, Phi-3; plus any `<|...|>` token, the form most templates use.
SPECIAL_TOKEN = re.compile(
    r"<\|[A-Za-z0-9_]{1,40}\|>|\[/?INST\]|<</?SYS>>|</?s>|<(?:start|end)_of_turn>|<\|?(?:bos|eos|pad)\|?>",
)


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing aliases and duplicate keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(
                None, None, f"an alias (*{event.anchor}) is not allowed here: write the value out", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.MarkedYAMLError(
                    None, None, f"duplicate key {key!r} (also on line {seen[key] + 1}): the last one would win silently",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def _no_duplicate_keys(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}: the last one would win silently")
        out[key] = value
    return out


def read_text(path: str | Path, what: str) -> str:
    """A file's text; a missing file, a folder, or text that is not UTF-8 (UTF-16 too) is named."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {str(path)!r} is a folder, not a file")
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{path}: UTF-16 text; save it as UTF-8")
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark is harmless
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); save it as UTF-8") from None


def parse(path: str | Path, text: str, kind: str = "auto"):
    """YAML (strict) or JSON (no duplicate keys) by suffix, or as ``kind`` says; errors name the file."""
    path = Path(path)
    as_yaml = kind == "yaml" or (kind == "auto" and path.suffix in (".yaml", ".yml"))
    try:
        if as_yaml:
            return yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader subclass)
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON: {error}") from None
    except ValueError as error:  # a duplicate JSON key
        raise ConfigError(f"{path}: not valid here: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', None) or error}") from None


def load(path: str | Path, what: str, kind: str = "auto"):
    """Read and parse a file the project reads itself, then check its size and numbers."""
    document = parse(path, read_text(path, what), kind)
    check_values(document, str(path))
    return document


def location(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the document"


def check_values(document, source: str, max_nodes: int = MAX_NODES) -> None:
    """At most ``max_nodes`` values, and every number finite; the walk stops at the cap."""
    stack, count = [((), document)], 0
    while stack:
        parts, value = stack.pop()
        count += 1
        if count > max_nodes:
            raise ConfigError(f"{source}: more than {max_nodes} values; is it the file you meant?")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{source}: {location(parts)} = {value}: must be a finite number")
        if isinstance(value, dict):
            stack.extend(((*parts, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*parts, i), v) for i, v in enumerate(value))


def check_config_file(path: str | Path) -> None:
    """A --configfile as the project requires it: strict YAML, a mapping of keys (Snakemake's own
    reading accepts duplicate keys and aliases, and names no file for some errors)."""
    document = load(path, "config file", kind="yaml")
    if document is None:
        raise ConfigError(f"{path}: empty; a config file is a mapping of keys, e.g. `experiments: [...]`")
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: a config file is a mapping of keys (e.g. `experiments: [...]`), not {type(document).__name__}")


def special_tokens_in(text: str) -> list[str]:
    return sorted(set(SPECIAL_TOKEN.findall(text)))


def check_no_special_tokens(rows: list[dict], fields, path, extra_tokens=()) -> None:
    """Reject a row whose prompt or answer holds a chat-template control token."""
    extra = [t for t in extra_tokens if t]
    for index, row in enumerate(rows):
        for field in fields:
            text = row.get(field)
            if not isinstance(text, str):
                continue
            found = special_tokens_in(text) + sorted({t for t in extra if t in text and not SPECIAL_TOKEN.fullmatch(t)})
            if found:
                raise ConfigError(
                    f"{path}: row {index} (id {json.dumps(row.get('id'), ensure_ascii=False)}), field {field!r}: holds the "
                    f"chat-template control token{'s' if len(found) > 1 else ''} {', '.join(found)}, which would end or "
                    "open a turn; remove it (or write it differently, e.g. with spaces)"
                )


def check_text_lengths(rows: list[dict], fields, path, max_chars: int, what: str) -> None:
    """A bound without the tokenizer: more characters than ``max_chars`` cannot fit ``what``."""
    for index, row in enumerate(rows):
        for field in fields:
            text = row.get(field)
            if isinstance(text, str) and len(text) > max_chars:
                raise ConfigError(
                    f"{path}: row {index} (id {json.dumps(row.get('id'), ensure_ascii=False)}), field {field!r}: "
                    f"{len(text)} characters; {what}"
                )


if __name__ == "__main__":  # `python -m dpo_study.config.reading FILE...`: why Snakemake refused a config file
    import sys

    failed = False
    for name in sys.argv[1:]:
        try:
            check_config_file(name)
            print(f"{name}: ok")
        except ConfigError as error:
            print(error)
            failed = True
    sys.exit(1 if failed else 0)
