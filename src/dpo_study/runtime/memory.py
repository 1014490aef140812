"""What a training job needs in GPU memory, estimated before anything loads (``runtime.plans`` decides by it).

The model's shape is read from its config and safetensors headers; the estimate is meant as an
upper bound of the peak: the weights, the activations a micro-batch keeps for its backward pass,
and its logits. The budget keeps 10% of the card and 3 GiB free besides (one H100 measurement,
BENCHMARKS.md: 25.8 GiB estimated, 26.4 GiB allocated at most over a worker's jobs). The reference
pass needs less: on a GPU it scores one micro-batch at a time and keeps no activations.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from dpo_study.config.model import safetensors_header
from dpo_study.runtime import gpus

# Memory kept free on the GPU: CUDA context, allocator fragmentation, the optimizer's LoRA states.
GPU_RESERVE_BYTES = 3 * 2**30
GPU_USABLE_FRACTION = 0.9


@dataclass(frozen=True)
class ModelShape:
    """What the memory estimate needs to know of a model: its size and its layer widths."""

    params: int
    embedding_params: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    vocab_size: int = 0

    def weight_bytes(self, in_4bit: bool) -> float:
        if not in_4bit:
            return 2.0 * self.params  # bf16
        # bitsandbytes NF4 packs the linear layers in ~0.55 bytes a weight (with its scales); the
        # embeddings and the LM head stay in bf16.
        return 0.55 * (self.params - self.embedding_params) + 2.0 * self.embedding_params

    def activation_bytes(self, sequences: int, length: int, checkpointing: bool) -> float:
        """Activations and logits kept for the backward pass of one micro-batch (bf16, every sequence
        padded to ``length``).

        Per token and layer a Llama block keeps ~12 hidden-wide and ~5 FFN-wide tensors (the
        attention inputs and outputs, the gated FFN, norms, LoRA dropout copies); with checkpointing
        only each layer's input stays, plus one layer recomputed at a time.
        """
        tokens = sequences * length
        per_layer = 2.0 * (12 * self.hidden_size + 5 * self.intermediate_size)
        if checkpointing:
            return tokens * (2.0 * self.hidden_size * self.num_layers + per_layer + self.logit_bytes)
        return tokens * (per_layer * self.num_layers + self.logit_bytes)

    @property
    def logit_bytes(self) -> float:
        """A token's logits: bf16, and their fp32 copy and log-softmax."""
        return 10.0 * self.vocab_size

    def training_peak_bytes(self, in_4bit: bool, micro: int, length: int, checkpointing: bool) -> float:
        """Weights plus a training step's activations and logits (chosen and rejected of ``micro`` pairs)."""
        return self.weight_bytes(in_4bit) + self.activation_bytes(2 * micro, length, checkpointing)


def _safetensors_params(path: Path) -> tuple[int, int]:
    """(all parameters, embedding + LM-head parameters) from the safetensors headers, without loading."""
    total = embedding = 0
    for file in sorted(path.glob("*.safetensors")):
        for name, info in safetensors_header(file).items():
            count = math.prod(info["shape"])
            total += count
            if "embed_tokens" in name or "lm_head" in name:
                embedding += count
    return total, embedding


def model_shape(path: str | Path) -> ModelShape:
    path = Path(path)
    config = json.loads((path / "config.json").read_text())
    config = config.get("text_config", config)
    params, embedding = _safetensors_params(path)
    return ModelShape(
        params=params,
        embedding_params=embedding,
        hidden_size=config["hidden_size"],
        intermediate_size=config.get("intermediate_size", 4 * config["hidden_size"]),
        num_layers=config["num_hidden_layers"],
        vocab_size=config.get("vocab_size", 0),
    )


def gpu_memory_bytes() -> int | None:
    """The GPU memory this job may plan for: its GPU's, divided among the jobs that share it
    (``software.jobs_per_gpu``, each share's worker with a base model of its own)."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory // gpus.gpu_shares()


def usable_bytes(gpu_bytes: int) -> float:
    return GPU_USABLE_FRACTION * gpu_bytes - GPU_RESERVE_BYTES
