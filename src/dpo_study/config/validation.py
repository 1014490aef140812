"""Input checks that run before any job: one readable line per problem, naming file, field and rule.

jsonschema's own messages dump whole schemas and documents; here each error becomes
``study.yaml: experiments[0].support_ratio = 1.5: must be a number ≥ 0 and ≤ 1``, with the
config file the value came from, or ``data/train.json: row 3 (id 4), field 'oppose' = "": must be
non-empty text`` for a data file.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
from pathlib import Path, PurePosixPath

import jsonschema
import yaml
from jsonschema.exceptions import ValidationError, best_match

from dpo_study.config.errors import COMMAND_LINE, ConfigError, Sources, kind_of, location, lookup, render

__all__ = ["ConfigError", "validate_config", "schema_defaults", "check_results_folder", "check_rows", "check_prompt_ids"]

TYPE_NAMES = {
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping of keys to values",
    "null": "null",
}


def expected(schema: dict) -> str:
    """What a schema allows, in words: 'a whole number ≥ 1', 'one of swap', 'a list of text'."""
    if "enum" in schema:
        return "one of " + ", ".join(render(v) for v in schema["enum"])
    for alternatives in ("oneOf", "anyOf"):
        if alternatives in schema:
            return " or ".join(expected(s) for s in schema[alternatives])
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if types == ["array"]:
        items = schema.get("items", {})
        if items.get("type") == "object" and "required" in items:
            return "a list of rows, each with the fields " + ", ".join(items["required"])
        words = "a non-empty list" if schema.get("minItems") == 1 else "a list"
        return words + (f", each item {expected(items)}" if items else "")
    names = [TYPE_NAMES.get(t, t) for t in types]
    if schema.get("minLength") == 1:
        names = ["non-empty text" if n == "text" else n for n in names]
    words = " or ".join(names) or "a value"
    bounds = [
        f"{sign} {render(schema[key])}"
        for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
        if key in schema
    ]
    if bounds:
        words += " " + " and ".join(bounds)
    if "description" in schema and "pattern" in schema:
        words += f" ({schema['description']})"
    elif "pattern" in schema:
        words += f" matching {schema['pattern']}"
    if "maxLength" in schema:
        words += f" of at most {schema['maxLength']} characters"
    return words


def problem(error: ValidationError, noun: str = "key") -> str:
    """What is wrong at the error's location, and what is allowed there."""
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        hints = [
            f"{name!r} (did you mean '{match[0]}'?)" if (match := difflib.get_close_matches(name, allowed, 1)) else repr(name)
            for name in unknown
        ]
        return f"unknown {noun}{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; allowed: {', '.join(allowed)}"
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return f"missing {noun} {', '.join(repr(m) for m in missing)} (required: {', '.join(error.validator_value)})"
    if error.validator == "minItems" and error.validator_value == 1:
        return "must not be an empty list"
    if error.validator == "uniqueItems":
        repeated = sorted({json.dumps(v) for v in error.instance if error.instance.count(v) > 1})
        return f"names {', '.join(repeated)} more than once; each may appear once"
    got = f"; got {kind_of(error.instance)}" if error.validator in ("type", "oneOf", "anyOf") else ""
    return f"must be {expected(error.schema)}{got}"


def leaf_errors(validator: jsonschema.protocols.Validator, document) -> list[ValidationError]:
    """Every error, each narrowed to its most specific cause (into oneOf branches), in document order."""
    by_location: dict[tuple, list[ValidationError]] = {}
    for error in validator.iter_errors(document):
        by_location.setdefault(tuple(error.absolute_path), []).append(error)
    # One error per location (an empty text breaks both minLength and pattern: say it once).
    errors = [best_match(group) for group in by_location.values()]
    return sorted(errors, key=lambda e: [(isinstance(p, str), p) for p in e.absolute_path])


# ---- the config ----------------------------------------------------------------------


def with_defaults(validator_class):
    """A validator that fills in each property's schema default, as it validates."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def sources_of(config_files) -> Sources:
    """``Sources`` as given, or read from a list of config files (priority order)."""
    if isinstance(config_files, Sources):
        return config_files
    from dpo_study.config.reading import read_config_files

    return read_config_files(config_files)


# Snakemake reads a --config value nested in a mapping (``defaults={beta: 0.5}``) without types.
COMMAND_LINE_HINT = (" (Snakemake passes values nested in --config as text: set this field in a --configfile, "
                     "e.g. a two-line overlay file, or give the top-level key its own --config entry)")


def describe_config_error(error: ValidationError, config: dict, sources: Sources) -> str:
    parts = list(error.absolute_path)
    where = location(parts)
    value = "" if error.validator in ("additionalProperties", "required") else f" = {render(error.instance)}"
    # Name the experiment too, when the error is inside one.
    if len(parts) >= 2 and parts[0] in ("experiments", "grids") and isinstance(parts[1], int):
        name, found = lookup(config, [*parts[:2], "name"])
        if found and parts[2:] != ["name"]:
            where += f" (of {render(name)})"
    source = sources.of(parts)
    hint = COMMAND_LINE_HINT if source == COMMAND_LINE and isinstance(error.instance, str) and error.validator == "type" else ""
    return f"{source}: {where}{value}: {problem(error)}{hint}"


def inline_refs(schema, root: dict):
    """The schema with each local ``$ref`` replaced by what it points to (so messages can describe it)."""
    if isinstance(schema, list):
        return [inline_refs(s, root) for s in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return inline_refs({**target, **rest}, root)
    return {k: inline_refs(v, root) for k, v in schema.items()}


@functools.lru_cache(maxsize=4)
def config_validator(schema_file: str):
    """The schema's validator, built once per process (it fills in defaults as it validates)."""
    schema = yaml.load(Path(schema_file).read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return with_defaults(jsonschema.Draft202012Validator)(inline_refs(schema, schema))


def validate_config(config: dict, schema_file: str | Path, config_files=()) -> None:
    """Check ``config`` against the schema and fill in its defaults (in place, as Snakemake's validate
    did); all problems in one error.

    ``config_files``: the ``Sources`` of the config (or the config files in priority order, the last
    ``--configfile`` first), so that a message names the file, or the command line, that set the value.
    """
    errors = leaf_errors(config_validator(str(schema_file)), config)
    if errors:
        sources = sources_of(config_files)
        raise ConfigError("\n".join(describe_config_error(e, config, sources) for e in errors))


@functools.lru_cache(maxsize=4)
def _defaults(schema_file: str) -> str:
    defaults: dict = {}
    validate_config(defaults, schema_file)  # an empty config, filled with every default
    return json.dumps(defaults)


def schema_defaults(schema_file: str | Path) -> dict:
    """A config of the schema's defaults only (a fresh copy each call)."""
    return json.loads(_defaults(str(schema_file)))


# Folders that belong to git, Snakemake or the project's own code: outputs there would mix with them.
RESERVED_FOLDERS = {".git", ".snakemake", ".github", "workflow", "src", "config", "data", "envs", "tests", "profiles"}


def check_results_folder(results: str, config_files=(), workdir: str | Path = ".") -> None:
    """Outputs stay strictly inside the working directory: not empty, no absolute path, no '..' that
    leaves it, no symlink (anywhere on the way) to a folder outside, not inside git's or Snakemake's
    own folders (or the checkout's), and no '~' (which is not the home folder here)."""
    where = f"{sources_of(config_files).of(['results'])}: results = {render(results)}"
    path = PurePosixPath(results)
    if not results.strip():
        raise ConfigError(f"{where}: must name a folder inside the working directory (e.g. results)")
    if path.is_absolute() or Path(results).is_absolute():
        raise ConfigError(f"{where}: must be a folder inside the working directory, not an absolute path")
    if results.startswith("~") or "$" in results:
        raise ConfigError(f"{where}: a folder name starting with '~' or holding '$' is taken literally here "
                          "(no home folder, no variables); name a folder inside the working directory (e.g. results)")
    first = next((p for p in path.parts if p != "."), "")
    if first in RESERVED_FOLDERS:
        raise ConfigError(f"{where}: inside {first}/, which belongs to git, Snakemake or the workflow's own files; "
                          "name a folder of its own (e.g. results)")
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            raise ConfigError(f"{where}: must stay inside the working directory ('..' leaves it)")
    root = Path(workdir).resolve()
    resolved = (root / results).resolve()
    if resolved == root:
        raise ConfigError(f"{where}: is the working directory itself; name a folder inside it (e.g. results)")
    if root not in resolved.parents:
        raise ConfigError(f"{where}: leads through a symlink to {resolved}, outside the working directory {root}")


# ---- data files ------------------------------------------------------------------------


def describe_row_error(error: ValidationError, path: Path, rows) -> str:
    parts = list(error.absolute_path)
    if not parts or not isinstance(rows, list):
        return f"{path}: {problem(error, 'field')}"
    row = rows[parts[0]]
    where = f"row {parts[0]}" + (f" (id {render(row['id'])})" if isinstance(row, dict) and "id" in row else "")
    if len(parts) > 1:
        where += f", field {'.'.join(map(str, parts[1:]))!r} = {render(error.instance)}"
    return f"{path}: {where}: {problem(error, 'field')}"


def check_rows(rows, schema: dict, path: Path) -> None:
    """Schema errors (all of them, one line each), then duplicate ids."""
    errors = leaf_errors(jsonschema.Draft202012Validator(schema), rows)
    if errors:
        raise ConfigError("\n".join(describe_row_error(e, path, rows) for e in errors))
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        key = str(row["id"])  # 7 and "7" name the same prompt in the outputs
        if key in seen:
            raise ConfigError(f"{path}: row {index}, field 'id' = {render(row['id'])}: duplicates the id of row {seen[key]}")
        seen[key] = index


def check_prompt_ids(prompt_files) -> None:
    """Test and probe prompts share one answer table keyed by id: an id may appear only once across
    the files (``{path: rows}`` or a list of ``(path, rows)``; a file listed twice repeats its ids)."""
    files = list(prompt_files.items()) if isinstance(prompt_files, dict) else list(prompt_files)
    first_seen: dict[str, tuple[int, str]] = {}
    for number, (path, rows) in enumerate(files):
        for index, row in enumerate(rows):
            key = str(row["id"])
            if key in first_seen and first_seen[key][0] != number:
                raise ConfigError(
                    f"{path}: row {index}, field 'id' = {render(row['id'])}: repeats an id of {first_seen[key][1]} "
                    "(test and probe prompts need distinct ids)"
                )
            first_seen.setdefault(key, (number, path))
