"""Loading the base model and tokenizer named by a model manifest, on whatever device is there."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from dpo_study import atomic
from dpo_study.validation import ConfigError

log = logging.getLogger(__name__)


def read_manifest(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def gpu_capability() -> tuple[int, int] | None:
    if not torch.cuda.is_available():
        return None
    try:
        return tuple(torch.cuda.get_device_capability())
    except (AssertionError, RuntimeError):  # a GPU simulated on a CPU build (tests)
        return None


def compute_dtype():
    """bf16 on a GPU that has it (compute capability >= 8.0: A100, H100, RTX 30xx and later), fp16 on
    older ones (the T4 of Colab and Kaggle, V100), fp32 on the CPU. The 4-bit base computes in it too."""
    capability = gpu_capability()
    if capability is None and device() != "cuda":
        return torch.float32
    return torch.float16 if capability is not None and tuple(capability) < (8, 0) else torch.bfloat16


def load_tokenizer(manifest: dict, settings: dict):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        manifest["path"], trust_remote_code=settings.get("trust_remote_code", False)
    )
    if tokenizer.pad_token is None:
        # Llama-3 ships no pad token; its reserved right-pad token (or EOS) is what fine-tuning uses.
        pad = "<|finetune_right_pad_id|>"
        tokenizer.pad_token = pad if pad in tokenizer.get_vocab() else tokenizer.eos_token
    return tokenizer


@dataclass(frozen=True)
class LoadPlan:
    """How the study's base model is loaded. One plan for training, generation, the implicit reward
    and the judges, so that all of them see the same base model (the training's reference)."""

    path: str
    device: str
    load_in_4bit: bool
    trust_remote_code: bool

    @property
    def dtype(self):
        """bf16 on a GPU that has it, fp16 on one that has not, fp32 on the CPU (``compute_dtype``)."""
        return compute_dtype() if self.device == "cuda" else torch.float32


def load_plan(manifest: dict, settings: dict) -> LoadPlan:
    """The plan for the model settings (the study's ``model`` group) on this machine: 4-bit or bf16 by
    the explicit ``load_in_4bit``, else by the recipe (backends.weights_in_4bit)."""
    from dpo_study.backends import gpu_memory_bytes, model_shape, weights_in_4bit

    where = device()
    in_4bit = weights_in_4bit(settings, device=where, gpu_bytes=gpu_memory_bytes(),
                              shape=model_shape(manifest["path"]) if where == "cuda" else None)
    return LoadPlan(str(manifest["path"]), where, in_4bit, bool(settings.get("trust_remote_code", False)))


def load_base(manifest: dict, settings: dict):
    """The study's base model, in the precision its settings resolve to: the one way every stage loads it."""
    return load_planned(load_plan(manifest, settings))


def load_planned(plan: LoadPlan):
    """Safetensors only, remote code only when the config allows it.

    Inside a resident worker (``dpo_study.worker``) the model of the same plan stays loaded across
    jobs (``dpo_study.resident``, which hands it back as freshly loaded); elsewhere each call loads it.
    """
    from transformers import AutoModelForCausalLM

    from dpo_study import resident

    return resident.load(plan, lambda: AutoModelForCausalLM.from_pretrained(
        plan.path,
        dtype=plan.dtype,
        quantization_config=quantization_config(plan),
        trust_remote_code=plan.trust_remote_code,
        use_safetensors=True,
        device_map={"": plan.device} if plan.device == "cuda" else None,
    ))


def quantization_config(plan: LoadPlan):
    if not (plan.load_in_4bit and plan.device == "cuda"):
        return None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=compute_dtype(),
        bnb_4bit_use_double_quant=True,
    )


def end_of_turn_ids(tokenizer, model) -> list[int]:
    """Token ids that end an answer: the model's EOS ids and the chat template's <|eot_id|>."""
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    if isinstance(eot, int) and eot != tokenizer.unk_token_id and eot not in ids:
        ids.append(eot)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


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
    from dpo_study.input_checks import check_model_folder

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


def resolve_model(manifest: str, name: str) -> None:
    """Stage: find (download once, if online) a model and record where it is, for the other stages;
    a model without a config or tokenizer stops here, before any GPU job (its modules are checked
    against training.target_modules at every parse once the manifest exists)."""
    record = {"name": name}
    if Path(name).is_dir():
        record["path"] = str(Path(name).resolve())
    else:
        from huggingface_hub import snapshot_download

        # Weights as safetensors only: no pickled checkpoints are fetched or loaded.
        record["path"] = snapshot_download(
            name,
            allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt"],
            local_files_only=hub_offline(),
            token=os.environ.get("HF_TOKEN"),
        )
        record["revision"] = Path(record["path"]).name
    from dpo_study.input_checks import check_model_folder

    check_model_folder(record["path"], (), f"model.name {name!r}")
    atomic.write_json(manifest, record)


def sequence_logprobs(model, sequences: list[list[int]], starts: list[int], batch_size: int = 8) -> list[float]:
    """Per token-id sequence, the sum of log P(token | tokens before it) over its tokens from ``starts[i]`` on.

    Right padding, so every sequence's positions are the same as when it is scored alone.
    """
    totals = []
    for first in range(0, len(sequences), batch_size):
        batch, batch_starts = sequences[first : first + batch_size], starts[first : first + batch_size]
        width = max(len(s) for s in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, sequence in enumerate(batch):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float()
        logprobs = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None].to(logits.device))[..., 0]
        for row, (sequence, start) in enumerate(zip(batch, batch_starts)):
            totals.append(logprobs[row, start - 1 : len(sequence) - 1].sum().item())
    return totals
