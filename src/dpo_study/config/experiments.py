"""Experiments: expand the config's named experiments and grids into parameter sets with keys.

A key is a readable, canonical rendering of an experiment's parameters
(``num_epoch~3_data_size~50_...``): identical parameter sets get the same key, so they share
artifacts, and a changed parameter gives a new key, so only that experiment's jobs run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import warnings
from dataclasses import dataclass

from dpo_study.config import strategies
from dpo_study.config.errors import ConfigError

# The order of the key's fields; also the columns the tables show per experiment.
EXPERIMENT_PARAMS = (
    "num_epoch",
    "data_size",
    "support_ratio",
    "beta",
    "lora_r",
    "lora_alpha",
    "learning_rate",
    "strategy",
    "seed",
)
# The subset that decides the preference pairs (so experiments differing only in training share them);
# ``seed`` joins it for seeded strategies, and ``mix_weights`` for ``mix`` (see Experiment.data_params).
DATA_PARAMS = ("data_size", "support_ratio", "strategy")

INT_PARAMS = {"num_epoch", "data_size", "lora_r", "lora_alpha", "seed"}
FLOAT_PARAMS = {"support_ratio", "beta", "learning_rate"}


@dataclass(frozen=True)
class Experiment:
    name: str
    params: dict

    @property
    def key(self) -> str:
        return params_key(self.params, [n for n in (*EXPERIMENT_PARAMS, "mix_weights") if n in self.params])

    @property
    def data_params(self) -> dict:
        """What decides the pairs, and nothing else, so that pairs are shared (and re-made) exactly."""
        out = {name: self.params[name] for name in DATA_PARAMS}
        if strategies.get(self.params["strategy"]).seeded:
            out["seed"] = self.params["seed"]
        if "mix_weights" in self.params:
            out["mix_weights"] = self.params["mix_weights"]
        return out

    @property
    def data_key(self) -> str:
        params = self.data_params
        return params_key(params, params)


# Every character a key can hold: no "/" (one path segment) and nothing that a shell or a regular
# expression treats specially, so that one simple wildcard pattern matches every key.
KEY_CHARACTERS = re.compile(r"[A-Za-z0-9_.,=~-]+")


def format_float(value: float) -> str:
    """The shortest text that reads back as exactly ``value`` (Python's repr), made path-friendly.

    0.002 and 0.0020000001 stay apart (``%g`` merged them); common values read as before (0.1,
    0.0001, 5e-05, 1 for 1.0); the exponent's "+" is dropped (1e+16 -> 1e16, which ``float`` reads).
    """
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    text = repr(value).replace("e+", "e")
    return text[:-2] if text.endswith(".0") else text


def format_value(value) -> str:
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, (list, tuple)):  # loss_type: sigmoid,sft
        return ",".join(format_value(v) for v in value)
    if isinstance(value, dict):  # mix_weights: hedge=1,swap=3 (no regex-special characters)
        return ",".join(f"{k}={format_value(v)}" for k, v in sorted(value.items()))
    return str(value)


def params_key(params: dict, names) -> str:
    return "_".join(f"{name}~{format_value(params[name])}" for name in names)


# A study far beyond any sweep the method needs: its dry run alone would take hours (BENCHMARKS.md:
# 1,000 experiments parse in ~20 s).
MAX_EXPERIMENTS = 10_000
SETTINGS_KEY_LIMIT = 150  # characters: one path segment may hold 255
MISSING = object()  # a field that the defaults lack counts as changed


def settings_key(settings: dict, defaults: dict) -> str:
    """A short, readable key of a group of shared settings, for the paths of what they shape.

    ``default`` when every field has its default, else the changed fields as ``name~value``
    (``max_new_tokens~64``; nested fields as ``llm.backend~endpoint``). When that would be long or
    hold a character a path cannot (a URL), the changed fields' names and a hash of their values.
    The rules also get the whole group as a param, so a change of the defaults themselves re-runs
    what they shaped instead of taking it for cached.
    """
    defaults, settings = flatten(defaults), flatten(settings)
    # In the schema's order (then any other field by name), whatever the order of the config file.
    names = [name for name in defaults if name in settings] + sorted(set(settings) - set(defaults))
    changed = {name: settings[name] for name in names if defaults.get(name, MISSING) != settings[name]}
    if not changed:
        return "default"
    readable = "_".join(f"{name}~{format_value(value)}" for name, value in changed.items())
    if len(readable) <= SETTINGS_KEY_LIMIT and KEY_CHARACTERS.fullmatch(readable):
        return readable
    digest = hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:12]
    names = "_".join(changed)
    return f"{names}~{digest}" if len(names) <= SETTINGS_KEY_LIMIT else f"changed~{digest}"


def flatten(settings: dict, prefix: str = "") -> dict:
    out = {}
    for name, value in settings.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def normalise(params: dict, where: str) -> dict:
    """Canonical types, so that 1 and 1.0 give one key."""
    out = {}
    for name in EXPERIMENT_PARAMS:
        value = params[name]
        if name in INT_PARAMS:
            if isinstance(value, bool) or float(value) != int(value):
                raise ConfigError(f"{where}.{name}: must be a whole number, got {value!r}")
            value = int(value)
        elif name in FLOAT_PARAMS:
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{where}.{name}: must be a finite number, got {value!r}")
        out[name] = value
    return out


def with_mix_weights(params: dict, mix_weights: dict, where: str) -> dict:
    """``mix`` experiments carry the study's weights, so that their keys change with them."""
    if params["strategy"] != "mix":
        return params
    if not mix_weights:
        raise ConfigError(f"{where}.strategy: 'mix' needs weights: set mix_weights, e.g. {{swap: 1, hedge: 1}}")
    weights = {name: float(w) for name, w in sorted(mix_weights.items())}
    if not all(math.isfinite(w) for w in weights.values()):
        raise ConfigError(f"mix_weights: must be finite numbers, got {mix_weights!r}")
    return {**params, "mix_weights": weights}


def expand(config: dict) -> list[Experiment]:
    """All experiments of a validated config, named experiments first, then grids in order.

    A grid ``{name: g, beta: [0.1, 0.5], lora_r: [8, 16]}`` gives one experiment per combination,
    named ``g_beta~0.1_lora_r~8`` and so on (the swept values, in the key's order).
    """
    defaults = config["defaults"]
    mix_weights = config.get("mix_weights") or {}
    experiments: list[Experiment] = []
    for index, entry in enumerate(config.get("experiments", [])):
        where = f"experiments[{index}] ({entry['name']})"
        params = {**defaults, **{k: v for k, v in entry.items() if k != "name"}}
        experiments.append(Experiment(entry["name"], with_mix_weights(normalise(params, where), mix_weights, where)))
    sizes = [math.prod(len(v) if isinstance(v, list) else 1 for v in grid.values()) for grid in config.get("grids", [])]
    if len(experiments) + sum(sizes) > MAX_EXPERIMENTS:
        raise ConfigError(f"grids: {len(experiments) + sum(sizes)} experiments (the grids' combinations {sizes} and "
                          f"{len(experiments)} named); a study may have at most {MAX_EXPERIMENTS}")
    for index, grid in enumerate(config.get("grids", [])):
        swept = [name for name in EXPERIMENT_PARAMS if name in grid]
        fixed = {k: v for k, v in grid.items() if k not in EXPERIMENT_PARAMS and k != "name"}
        if fixed:
            raise ConfigError(f"grids[{index}]: unknown keys {sorted(fixed)}")
        values = [grid[name] if isinstance(grid[name], list) else [grid[name]] for name in swept]
        for combination in itertools.product(*values):
            point = dict(zip(swept, combination))
            where = f"grids[{index}] ({grid['name']})"
            params = with_mix_weights(normalise({**defaults, **point}, where), mix_weights, where)
            suffix = params_key(params, [n for n in swept if isinstance(grid[n], list)])
            name = f"{grid['name']}_{suffix}" if suffix else grid["name"]
            experiments.append(Experiment(name, params))
    check(experiments)
    return experiments


def check(experiments: list[Experiment]) -> None:
    if not experiments:
        raise ConfigError("experiments/grids: the config declares no experiment")
    seen: dict[str, Experiment] = {}
    by_key: dict[str, str] = {}
    for experiment in experiments:
        if experiment.name in seen:
            raise ConfigError(f"experiments: duplicate experiment name {experiment.name!r}")
        seen[experiment.name] = experiment
        # The workflow's wildcards match any path segment: names and keys are checked here instead.
        for what, text in (("name", experiment.name), ("key", experiment.key)):
            if not KEY_CHARACTERS.fullmatch(text):
                raise ConfigError(f"experiments: the {what} {text!r} of {experiment.name!r} holds a character "
                                  "other than letters, digits and _ . , = ~ -")
        if experiment.key in by_key:
            warnings.warn(
                f"experiments {by_key[experiment.key]!r} and {experiment.name!r} have identical "
                "parameters: they share one run",
                stacklevel=2,
            )
        by_key.setdefault(experiment.key, experiment.name)
