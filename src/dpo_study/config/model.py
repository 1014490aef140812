"""The model a study names: its folder name in results/, and the parse-time facts and checks of it (no ML
library is imported here): that it can be found and trained as configured, its own context length and
its tokenizer's special tokens, read from the folder's JSON files and the safetensors headers.
"""

from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from dpo_study.config.errors import ConfigError, path_kind
from dpo_study.config.texts import DEMO_SPECIAL_TOKENS, tokenizer_special_tokens

# The embedded demo model's context (stages/demo_model.py builds it with this many positions).
DEMO_MAX_POSITIONS = 512
# config.json fields that hold a model's context length, by family.
POSITION_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


def model_slug(name: str) -> str:
    """A folder name for a model id or path: ``unsloth/llama-3-8b-Instruct`` -> ``unsloth--llama-3-8b-Instruct``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip("/")).strip("-") or "model"


def read_manifest(path: str | Path) -> dict:
    """A model manifest (``resolve_model``'s or ``build_demo_model``'s output): the model's folder and
    what was resolved; torch-free, so that a job's side can read it before handing the job on."""
    return json.loads(Path(path).read_text())


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def require_safetensors(folder: str | Path, what: str) -> None:
    """Weights are read from safetensors only: a pickled checkpoint can run code when loaded."""
    if not any(Path(folder).glob("*.safetensors")):
        raise ConfigError(
            f"{what} {str(folder)!r} holds no *.safetensors weights "
            "(pickled .bin/.pt weights are never loaded; convert them to safetensors)"
        )


def safetensors_names(file: str | Path) -> list[str]:
    """The tensor names of a safetensors file (``safetensors_header``)."""
    return list(safetensors_header(file))


def safetensors_header(file: str | Path) -> dict[str, dict]:
    """Each tensor's entry (dtype, shape, offsets) of a safetensors file, from its header (8 bytes of
    length, then JSON), after checking that the file holds every byte the header promises: an empty or
    cut file is named here instead of failing inside a job."""
    file = Path(file)
    size = file.stat().st_size
    problem = None
    with file.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            problem = f"{size} bytes, too short for a safetensors header"
        else:
            (length,) = struct.unpack("<Q", head)
            if length > min(size - 8, 100 * 2**20):
                problem = f"its header claims {length} bytes, the file has {size}"
            else:
                try:
                    header = json.loads(handle.read(length))
                    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
                except (ValueError, KeyError, TypeError, IndexError, RecursionError):
                    problem = "its header is not a safetensors header"
                else:
                    if 8 + length + max(ends, default=0) > size:
                        problem = f"cut short: {size} bytes of the {8 + length + max(ends)} its header lists"
    if problem:
        raise ConfigError(f"{file}: not a complete safetensors file ({problem}); replace the file")
    return {k: v for k, v in header.items() if k != "__metadata__"}


def module_names(folder: str | Path) -> set[str]:
    """The module names of a model folder's weights (``q_proj`` ...), from the safetensors headers only."""
    names = set()
    for file in Path(folder).glob("*.safetensors"):
        for key in safetensors_names(file):
            names.update(key.split(".")[:-1])
    return names


def read_json(file: Path, what: str) -> dict:
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:
        raise ConfigError(f"{what}: {file} is not readable JSON ({error})") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{what}: {file} is not a JSON mapping")
    return document


def max_positions(model_config: dict) -> int | None:
    """A model's context length, as its config.json states it (the text config of a multimodal one)."""
    for document in (model_config, model_config.get("text_config") or {}):
        for name in POSITION_FIELDS:
            value = document.get(name) if isinstance(document, dict) else None
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def check_model_folder(folder: str | Path, target_modules=(), what: str = "model.name") -> dict:
    """A model folder needs a config, a tokenizer and complete safetensors weights, and the modules that
    LoRA targets; returns its config.json."""
    folder = Path(folder)
    missing = [n for n in ("config.json",) if not (folder / n).is_file()]
    if not any((folder / n).is_file() for n in TOKENIZER_FILES):
        missing.append("tokenizer.json (or tokenizer.model)")
    if missing:
        raise ConfigError(f"{what}: folder {str(folder)!r} has no {' and no '.join(missing)}; a model folder needs both")
    model_config = read_json(folder / "config.json", what)
    names = module_names(folder)
    absent = [m for m in target_modules if m not in names]
    if names and absent:
        layers = sorted(n for n in names if not n.isdigit())
        raise ConfigError(
            f"training.target_modules: {absent} are not modules of the model in {str(folder)!r}; "
            f"its modules: {', '.join(layers)}"
        )
    return model_config


def check_model_name(name: str, target_modules=()) -> Path | None:
    """Fail before any job when a model cannot be found (a missing local folder, or offline and not
    cached) or cannot be trained as configured (no config or tokenizer, LoRA modules it lacks).
    Returns the model's folder where it is on disk already."""
    if name == "demo":
        return None
    if path_kind(name, "model.name") == "dir":
        require_safetensors(name, "model.name: folder")
        check_model_folder(name, target_modules)
        return Path(name)
    looks_local = name.startswith((".", "/", "~")) or name.count("/") != 1
    if looks_local:
        raise ConfigError(f"model.name: {name!r} is neither a local model folder nor a Hugging Face id (owner/name)")
    if hub_offline():
        from huggingface_hub import snapshot_download

        try:
            folder = snapshot_download(name, local_files_only=True)
        except Exception:
            raise ConfigError(
                f"model.name: {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
            ) from None
        check_model_folder(folder, target_modules, f"model.name {name!r}")
        return Path(folder)
    return None


@dataclass
class ModelFacts:
    """What the parse knows of the study's model: its folder (where on disk), its context length and
    its tokenizer's special tokens (the generic forms only, for a Hub model not downloaded yet)."""

    folder: Path | None = None
    max_positions: int | None = None
    special_tokens: frozenset = field(default_factory=frozenset)

    @property
    def tokenizer_file(self) -> Path | None:
        file = self.folder / "tokenizer.json" if self.folder else None
        return file if file and file.is_file() else None


def manifest_folder(manifest: str | None) -> Path | None:
    """The folder that an earlier resolve_model/build_demo_model recorded, where it still exists."""
    if not manifest or not Path(manifest).is_file():
        return None
    try:
        folder = Path(json.loads(Path(manifest).read_text(encoding="utf-8"))["path"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return folder if folder.is_dir() else None


def model_facts(name: str, target_modules=(), manifest: str | None = None) -> ModelFacts:
    """check_model_name, then the facts of the model: from its folder where one is on disk (the name
    itself, the offline cache, or the folder a manifest of an earlier run records)."""
    folder = check_model_name(name, target_modules)
    if folder is None and (built := manifest_folder(manifest)):
        folder = built
        check_model_folder(folder, target_modules, f"model.name {name!r}")
    if name == "demo":
        return ModelFacts(folder, DEMO_MAX_POSITIONS, frozenset(DEMO_SPECIAL_TOKENS))
    if folder is None:
        return ModelFacts()
    what = f"model.name {name!r}"
    return ModelFacts(folder, max_positions(read_json(folder / "config.json", what)), frozenset(tokenizer_special_tokens(folder)))
