"""Generated bad input for the whole configuration floor (Hypothesis, a fixed seed, a bounded number of
examples): values drawn for every field of the config schema and of the data files, for whole overlay
files and for --config values: wrong types, extremes, NaN/inf, huge and empty strings, invisible and
control characters, deep nesting. Loading the study either succeeds or raises the project's
ConfigError naming the source (a config file, the command line, a data file) and the field; no other
exception type, and no hang (each example runs under an alarm)."""

import contextlib
import copy
import json
import os
import signal
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import REPO
from dpo_study.config import reading
from dpo_study.config.errors import COMMAND_LINE, ConfigError
from dpo_study.config.study import load_study
from dpo_study.config.validation import inline_refs

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
SCHEMA = inline_refs(SCHEMA, SCHEMA)
DEMO = yaml.safe_load((REPO / "config/demo.yaml").read_text())
DATA_SCHEMAS = {kind: yaml.safe_load((REPO / f"src/dpo_study/schemas/{kind}.schema.yaml").read_text())
                for kind in ("train", "test", "probes", "judge_texts")}
DATA_FILES = {"train": "data/train.json", "test": "data/test.json", "probes": "config/probes.yaml",
              "judge_texts": "data/judge_texts.json"}
SECONDS_PER_EXAMPLE = 30
def generated(examples: int):
    """A fixed seed and ``examples`` examples for CI; a longer hunt: DPO_GENERATED_SCALE=10 (examples x10)
    and DPO_GENERATED_RANDOM=1 (a new seed each run)."""
    scale = float(os.environ.get("DPO_GENERATED_SCALE", "1"))
    return settings(max_examples=max(1, int(examples * scale)), derandomize=not os.environ.get("DPO_GENERATED_RANDOM"), database=None, deadline=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


def field_paths(schema, prefix=()) -> list[tuple]:
    """Every field of the schema, as a path (lists of objects by their first item), sections too."""
    paths = [prefix] if prefix else []
    if not isinstance(schema, dict):
        return paths
    for name, sub in (schema.get("properties") or {}).items():
        paths += field_paths(sub, (*prefix, name))
    items = schema.get("items")
    if isinstance(items, dict) and items.get("properties"):
        paths += field_paths(items, (*prefix, 0))
    return paths


CONFIG_FIELDS = field_paths(SCHEMA)

INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u202e", "\u2066", "\u00ad", "\x00", "\x07", "\x1b",
             "\x7f", "\u2028", "\ud800", "\udfff", "\U000e0001"]


def nested(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


def nasty_text():
    return st.one_of(
        st.text(max_size=30),
        st.text(alphabet=st.sampled_from(INVISIBLE + [" ", "a", "\n", "\t"]), max_size=12),
        st.sampled_from(["", " ", "x" * 100_000, "a" * 300, "../../etc/passwd", "~", ".git", "<|eot_id|>",
                         "<｜end▁of▁sentence｜>", "[INST]", "file:///etc/passwd", "https://h", "NaN", "1e999", "null",
                         "true", "demo", "data/train.json", "/", ".", "a\nb", "q_proj", "sigmoid", "52\u200b"]),
    )


def nasty():
    scalars = st.one_of(
        st.none(), st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, -1, 1, 2, 7, 16, 512, 4294967296, 10**9, 2**63]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-320, 1e308, 0.5, 1.0]),
        nasty_text(),
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=4),
        st.dictionaries(nasty_text(), scalars, max_size=3),
        st.sampled_from([nested(70), nested(400), [[]], [{}], {"": {}}, list(range(300))]),
    )


def set_at(document, path, value):
    """``document`` with ``value`` at ``path`` (mappings and lists made where missing)."""
    target = document
    for part, nxt in zip(path[:-1], path[1:]):
        if isinstance(target, dict):
            if not isinstance(target.get(part), (dict, list)) or (isinstance(nxt, int) and not isinstance(target.get(part), list)):
                target[part] = [{}] if isinstance(nxt, int) else {}
            target = target[part]
        else:  # a list, part an index
            if not target:
                target.append({})
            if not isinstance(target[0], dict):
                target[0] = {}
            target = target[0]
    if isinstance(target, list):
        target[:1] = [value]
    else:
        target[path[-1]] = value
    return document


@contextlib.contextmanager
def time_limit(seconds):
    def stop(signum, frame):
        raise TimeoutError(f"loading took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def merge(base, extra):
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for folder in ("data", "config"):
        (tmp_path / folder).symlink_to(REPO / folder)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path


def outcome(config, config_files, command_line=None, sources=()):
    """None when the study loads; else the ConfigError's message, checked to name a source."""
    try:
        with time_limit(SECONDS_PER_EXAMPLE):
            load_study(config, config_files, command_line=command_line)
        event("loaded")  # pytest --hypothesis-show-statistics lists how many examples ended how
        return None
    except ConfigError as error:
        message = str(error)
    names = [str(f) for f in config_files] + [COMMAND_LINE, *sources]
    for line in message.splitlines():
        assert any(line.startswith(name) or f"{name}:" in line for name in names), (line, names)
    assert "Traceback" not in message
    event("refused")
    return message


def field_named(message: str, path) -> bool:
    words = [str(p) for p in path if isinstance(p, str)]
    return any(w in message for w in words)


@generated(120)
@given(path=st.sampled_from(CONFIG_FIELDS), value=nasty())
def test_any_value_of_any_config_field(workdir, path, value):
    overlay = set_at({}, path, value)
    study = Path("study.json")
    try:
        study.write_text(json.dumps(overlay))  # NaN and inf as JSON's NaN/Infinity; lone surrogates escaped
    except (ValueError, RecursionError):
        return  # not writable as a file: nothing a user could hand over
    if not overlay_readable(study):
        event("overlay refused by the strict reader")
        return
    config = merge(DEMO, reading.check_config_file(study))
    message = outcome(config, [study, "config/demo.yaml"], sources=["data/", "config/", str(workdir), "/"])
    if message is not None:
        assert field_named(message, path) or any(k in message for k in ("row ", "experiment", "grids", "question")), (path, message)


def overlay_readable(path) -> bool:
    """An overlay the strict reader refuses is covered by test_any_overlay_file; here the value must
    reach load_study."""
    try:
        reading.check_config_file(path)
        return True
    except ConfigError:
        return False


@generated(40)
@given(path=st.sampled_from(CONFIG_FIELDS), value=nasty())
def test_any_value_on_the_command_line(workdir, path, value):
    """--config values: Snakemake gives a nested value as text; the message names the command line."""
    top = {path[0]: value} if len(path) == 1 else set_at({}, path, value if isinstance(value, str) else json.dumps(value))
    config = merge(DEMO, top)
    message = outcome(config, ["config/demo.yaml"], command_line=top, sources=["data/", "config/", str(workdir), "/"])
    if message is not None:
        assert field_named(message, path) or any(k in message for k in ("row ", "experiment", "grids", "question")), (path, message)


def data_field_paths(kind):
    item = DATA_SCHEMAS[kind]["items"]
    return [*item["properties"], "unknown_field"]


@generated(80)
@given(kind=st.sampled_from(sorted(DATA_FILES)), data=st.data())
def test_any_value_of_any_data_file_field(workdir, kind, data):
    rows = json.loads((REPO / DATA_FILES[kind]).read_text()) if DATA_FILES[kind].endswith(".json") \
        else yaml.safe_load((REPO / DATA_FILES[kind]).read_text())
    how = data.draw(st.sampled_from(["field", "field", "field", "document", "row"]))
    if how == "document":
        rows = data.draw(nasty())
    elif how == "row":
        rows[data.draw(st.integers(0, len(rows) - 1))] = data.draw(nasty())
    else:
        index = data.draw(st.integers(0, len(rows) - 1))
        rows[index][data.draw(st.sampled_from(data_field_paths(kind)))] = data.draw(nasty())
    path = workdir / f"generated_{kind}.json"
    try:
        path.write_text(json.dumps(rows))
    except (ValueError, RecursionError):
        return
    key = {"train": ("data", "train"), "test": ("data", "test"), "probes": ("data", "probes"),
           "judge_texts": ("judge", "texts")}[kind]
    config = copy.deepcopy(DEMO)
    config.setdefault(key[0], {})[key[1]] = [str(path)] if kind == "probes" else str(path)
    if kind == "train":  # fewer rows than the demo's experiments use: one experiment of one row
        config.update(experiments=[{"name": "a", "data_size": 1}], questions=[])
    outcome(config, ["config/demo.yaml"], sources=[str(path), "data/", "config/"])


@generated(60)
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                      st.sampled_from(["{", "[" * 5000, "a: &x 1\nb: *x\n", "a: 1\na: 2\n", "- 1\n", "",
                                       '{"defaults": {"beta": NaN}}', '{\n\t"results": "out"\n}',
                                       "\ufeffresults: out\n", "results: !!python/object:os.system x\n"])),
       encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_any_overlay_file(workdir, text, encoding):
    """The strict reader (what load_study and `python -m dpo_study.config.reading` run on every
    --configfile) gives a mapping or the project's error naming the file."""
    path = workdir / "overlay.yaml"
    try:
        path.write_bytes(text.encode(encoding))
    except UnicodeEncodeError:
        return
    try:
        with time_limit(SECONDS_PER_EXAMPLE):
            document = reading.check_config_file(path)
    except ConfigError as error:
        assert str(error).startswith(str(path)) or f"'{path}'" in str(error), str(error)
        return
    assert isinstance(document, dict)
