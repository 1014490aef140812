"""Loading the base model and tokenizer named by a model manifest, on whatever device is there."""

from __future__ import annotations

import logging

import torch

from dpo_study.config.model import read_manifest  # noqa: F401 (stages read it here)
from dpo_study.config.settings import ModelSettings
from dpo_study.runtime.plans import LoadPlan, compute_dtype, load_plan

log = logging.getLogger(__name__)


def load_tokenizer(manifest: dict, settings: ModelSettings):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(manifest["path"], trust_remote_code=settings.trust_remote_code)
    if tokenizer.pad_token is None:
        # Llama-3 ships no pad token; its reserved right-pad token (or EOS) is what fine-tuning uses.
        pad = "<|finetune_right_pad_id|>"
        tokenizer.pad_token = pad if pad in tokenizer.get_vocab() else tokenizer.eos_token
    return tokenizer


def load_base(manifest: dict, settings: ModelSettings):
    """The study's base model, in the precision its settings resolve to: the one way every stage loads it."""
    return load_planned(load_plan(manifest, settings))


def load_planned(plan: LoadPlan):
    """Safetensors only, remote code only when the config allows it.

    Inside a resident worker (``dpo_study.runtime.worker``) the model of the same plan stays loaded across
    jobs (``dpo_study.runtime.resident``, which hands it back as freshly loaded); elsewhere each call loads it.
    """
    from transformers import AutoModelForCausalLM

    from dpo_study.runtime import resident

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


def continuation_logprobs(model, prefixes: list[list[int]], continuations: list[list[int]],
                          batch_size: int = 8) -> list[list[float]]:
    """Per prefix, per continuation: the sum of log P(token | tokens before it) over the continuation's
    tokens, as ``sequence_logprobs`` scores ``prefix + continuation`` from the continuation on. Each
    prefix runs once (left-padded, positions as if alone) and its key/value cache serves all its
    continuations: a judge's six label words cost one pass over the judged text, not six."""
    from dpo_study.runtime.decode import cached_forward

    causal_lm, cache_argument = cached_forward(model)
    count, longest = len(continuations), max(len(c) for c in continuations)
    totals = []
    for first in range(0, len(prefixes), batch_size):
        batch = prefixes[first : first + batch_size]
        width = max(len(p) for p in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, prefix in enumerate(batch):
            ids[row, width - len(prefix) :] = torch.tensor(prefix)
            mask[row, width - len(prefix) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        device = model.device
        with torch.inference_mode():
            out = causal_lm(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                            use_cache=longest > 1, logits_to_keep=1)
            first_logprobs = torch.log_softmax(out.logits[:, -1].float(), -1).cpu()
            later = None
            if longest > 1:  # the continuations' further tokens, on the prefix's cache repeated for each
                cache = getattr(out, "cache", None) or out.past_key_values  # transformers 5.24 / 5.17
                cache.batch_repeat_interleave(count)
                tokens = torch.zeros((len(batch) * count, longest), dtype=torch.long)
                for row in range(len(batch)):
                    for index, continuation in enumerate(continuations):
                        tokens[row * count + index, : len(continuation)] = torch.tensor(continuation)
                full_mask = torch.cat((mask.repeat_interleave(count, 0), torch.ones_like(tokens)), dim=1)
                steps = positions[:, -1:].repeat_interleave(count, 0) + 1 + torch.arange(longest)
                logits = causal_lm(input_ids=tokens.to(device), attention_mask=full_mask.to(device),
                                   position_ids=steps.to(device), **{cache_argument: cache}).logits
                later = torch.log_softmax(logits.float(), -1).cpu()
        for row in range(len(batch)):
            totals.append([
                float(first_logprobs[row, continuation[0]])
                + sum(float(later[row * count + index, step - 1, token]) for step, token in enumerate(continuation)
                      if step > 0)
                for index, continuation in enumerate(continuations)])
    return totals


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
