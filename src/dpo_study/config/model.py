"""The model a study names: its folder name in results/, and the parse-time check that it can be found
and trained as configured (no ML library is imported here)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from dpo_study.config.validation import ConfigError


def model_slug(name: str) -> str:
    """A folder name for a model id or path: ``unsloth/llama-3-8b-Instruct`` -> ``unsloth--llama-3-8b-Instruct``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name.strip("/")).strip("-") or "model"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def require_safetensors(folder: str | Path, what: str) -> None:
    """Weights are read from safetensors only: a pickled checkpoint can run code when loaded."""
    if not any(Path(folder).glob("*.safetensors")):
        raise ConfigError(
            f"{what} {str(folder)!r} holds no *.safetensors weights "
            "(pickled .bin/.pt weights are never loaded; convert them to safetensors)"
        )


def check_model_name(name: str, target_modules=()) -> None:
    """Fail before any job when a model cannot be found (a missing local folder, or offline and not
    cached) or cannot be trained as configured (no config or tokenizer, LoRA modules it lacks)."""
    from dpo_study.config.checks import check_model_folder

    if name == "demo":
        return
    if Path(name).is_dir():
        require_safetensors(name, "model.name: folder")
        check_model_folder(name, target_modules)
        return
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
