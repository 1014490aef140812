"""Reading the files users write, strictly and with bounded work, so that bad input says so at once.

- YAML: no aliases (a "billion laughs" file expands to gigabytes when walked), no duplicate keys
  (the last one would win silently); JSON: no duplicate keys. A config file is read as Snakemake
  reads it: JSON when it parses as JSON, else YAML.
- Every document is walked once with a cap on its values and its depth; numbers must be finite
  (YAML's `.nan` and JSON's `NaN` pass jsonschema's range checks, since every comparison with NaN is
  false) and text must be UTF-8 (a JSON escape can hold a lone surrogate half).
Each error names the file (and row, field) and what is allowed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from dpo_study.config.errors import ConfigError, Sources, location, path_kind

MAX_NODES = 200_000  # values in one document; the bundled files have a few thousand
MAX_DEPTH = 64  # levels of nesting; the deepest bundled document has 4


# libyaml's parser where it is installed (ten times faster than PyYAML's; it also caps nesting at 1,000).
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def strict_yaml(text: str):
    """YAML without aliases, duplicate keys or nesting deeper than MAX_DEPTH: the events are scanned
    (aliases, depth), the node graph is checked (duplicate keys), then the document is built."""
    loader = Loader(text)
    try:
        depth = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.AliasEvent):
                raise yaml.MarkedYAMLError(None, None, f"an alias (*{event.anchor}) is not allowed here: write the "
                                           "value out", event.start_mark)
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise yaml.MarkedYAMLError(None, None, f"nested more than {MAX_DEPTH} levels deep; is it the "
                                               "file you meant?", event.start_mark)
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    finally:
        loader.dispose()
    loader = Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        stack = [root]
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                seen = {}
                for key_node, value_node in node.value:
                    key = (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                    if key in seen:
                        raise yaml.MarkedYAMLError(
                            None, None, f"duplicate key {key_node.value!r} (also on line {seen[key] + 1}): the last one "
                            "would win silently", key_node.start_mark)
                    seen[key] = key_node.start_mark.line
                    stack.extend((key_node, value_node))
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
        return loader.construct_document(root)
    finally:
        loader.dispose()


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
    kind = path_kind(path, what)
    if kind == "dir":
        raise ConfigError(f"{what} {str(path)!r} is a folder, not a file")
    if kind != "file":
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{what} {str(path)!r}: cannot be read ({error.strerror})") from None
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
            return strict_yaml(text)
        return json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        raise ConfigError(f"{path}: nested more than {MAX_DEPTH} levels deep; is it the file you meant?") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not valid JSON: {error}") from None
    except ValueError as error:  # a duplicate JSON key
        raise ConfigError(f"{path}: not valid here: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = str(getattr(error, "problem", None) or error)
        if "maximum nesting depth" in problem:  # libyaml's own cap, met before ours
            problem = f"nested more than {MAX_DEPTH} levels deep; is it the file you meant?"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None


def load(path: str | Path, what: str, kind: str = "auto"):
    """Read and parse a file the project reads itself, then check its size and numbers."""
    document = parse(path, read_text(path, what), kind)
    check_values(document, str(path))
    return document


def check_values(document, source, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> None:
    """At most ``max_nodes`` values nested at most ``max_depth`` deep, every number finite and every
    text UTF-8 (a JSON escape can hold half a surrogate pair); the walk stops at the cap.
    ``source``: the file's name, or the ``Sources`` of a merged config (each value's own file)."""
    name = source.of if isinstance(source, Sources) else (lambda parts: str(source))
    stack, count = [((), document)], 0
    while stack:
        parts, value = stack.pop()
        count += 1
        if count > max_nodes:
            raise ConfigError(f"{name(())}: more than {max_nodes} values; is it the file you meant?")
        if len(parts) > max_depth:
            raise ConfigError(f"{name(parts[:1])}: {location(parts[:3], 'the document')}...: nested more than "
                              f"{max_depth} levels deep; is it the file you meant?")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name(parts)}: {location(parts, 'the document')} = {value}: must be a finite number")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ConfigError(f"{name(parts)}: {location(parts, 'the document')}: character {error.start} is half "
                                  "of a UTF-16 surrogate pair (an escape like \\ud800), not text; write the character "
                                  "itself") from None
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise ConfigError(f"{name(parts)}: {location((*parts, key), 'the document')}: the key {key!r} "
                                      "is not text; write it in quotes")
            stack.extend(((*parts, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*parts, i), v) for i, v in enumerate(value))


def check_config_file(path: str | Path) -> dict:
    """A config file as the project requires it: strict JSON or YAML (as Snakemake reads it: JSON when
    it parses as JSON), a mapping of keys, bounded and finite. Snakemake's own reading accepts duplicate
    keys and aliases, and names no file for some errors."""
    text = read_text(path, "config file")
    try:
        json.loads(text)
        kind = "json"
    except (ValueError, RecursionError):
        kind = "yaml"
    document = parse(path, text, kind)
    if document is None:
        raise ConfigError(f"{path}: empty; a config file is a mapping of keys, e.g. `experiments: [...]`")
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: a config file is a mapping of keys (e.g. `experiments: [...]`), not {type(document).__name__}")
    check_values(document, str(path))
    return document


def read_config_files(config_files, command_line: dict | None = None) -> Sources:
    """Each config file strictly (check_config_file), once: Snakemake lists a --configfile twice (as
    given and among its config files). The sources of the merged config, for messages."""
    firsts = {}
    for path in config_files:
        firsts.setdefault(Path(path).resolve(), str(path))
    documents = {resolved: check_config_file(path) for resolved, path in firsts.items()}
    return Sources([(path, documents[Path(path).resolve()]) for path in config_files], command_line)


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
