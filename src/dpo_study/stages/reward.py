"""The DPO implicit reward of an answer: beta * (log pi(y|x) - log pi_ref(y|x)).

pi is the aligned model (base + the experiment's LoRA adapter), pi_ref the base model: the same
weights with the adapter switched off, loaded by modeling.load_base in the precision training used
(the recipe's 4-bit or bf16), so exactly the reference that training used. An answer y is
scored as the chat template writes an assistant turn (its text and the end-of-turn token), after the
system and user turns x that it was generated for.
"""

from __future__ import annotations

import logging
import math

import pandas as pd
import torch

from dpo_study.config import artifacts, atomic
from dpo_study.config.settings import ModelSettings
from dpo_study.stages.data import read_jsonl
from dpo_study.runtime import modeling
from dpo_study.runtime.modeling import load_tokenizer, read_manifest, sequence_logprobs
from dpo_study.runtime.plans import JobPlan

log = logging.getLogger(__name__)


def conversation_ids(tokenizer, record: dict, answer: str) -> tuple[list[int], int]:
    """Token ids of system + user + assistant turns, and where the assistant's answer starts."""
    messages = [{"role": "system", "content": record["system"]}, {"role": "user", "content": record["prompt"]}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template([*messages, {"role": "assistant", "content": answer}], tokenize=False)
    if not full.startswith(prompt):
        raise ValueError("the chat template does not write the assistant turn after the generation prompt")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    return prompt_ids + answer_ids, len(prompt_ids)


def answer_logprobs(model, tokenizer, records: list[dict], batch_size: int = 8) -> list[float]:
    encoded = [conversation_ids(tokenizer, r, r["response"]) for r in records]
    return sequence_logprobs(model, [ids for ids, _ in encoded], [start for _, start in encoded], batch_size)


def answer_tokens(tokenizer, records: list[dict]) -> list[int]:
    """How many tokens answer_logprobs sums over per answer (its text and the end-of-turn token)."""
    return [len(ids) - start for ids, start in (conversation_ids(tokenizer, r, r["response"]) for r in records)]


def perplexity(logp: float, tokens: int) -> float:
    """exp of the mean negative log-likelihood per token: the fluency of an answer under a model."""
    return math.exp(-logp / tokens) if tokens else math.nan


def implicit_rewards(
    manifest: str,
    adapter: str,
    aligned_responses: str,
    base_responses: str,
    rewards: str,
    beta: float,
    model_settings: ModelSettings,
    batch_size: int = 8,
    threads: int = 1,
    plan: JobPlan | None = None,
) -> None:
    """Stage: per prompt, the implicit reward of the aligned answer and of the base model's answer
    (``aligned_implicit_reward``, ``original_implicit_reward``) under one experiment's adapter, and
    each answer's perplexity under the base model (``aligned_perplexity``, ``original_perplexity``)."""
    from peft import PeftModel

    artifacts.check_adapter(adapter)
    base_records = artifacts.read_jsonl_checked(base_responses)
    artifacts.read_responses(aligned_responses, [r["id"] for r in base_records], base_responses)
    torch.set_num_threads(threads)
    base_manifest = read_manifest(manifest)
    tokenizer = load_tokenizer(base_manifest, model_settings)
    base = modeling.load_planned(plan.load) if plan is not None else modeling.load_base(base_manifest, model_settings)
    policy = PeftModel.from_pretrained(base, adapter).eval()
    table = None
    for side, path in (("aligned", aligned_responses), ("original", base_responses)):
        records = read_jsonl(path)
        logp_policy = answer_logprobs(policy, tokenizer, records, batch_size)
        with policy.disable_adapter():
            logp_reference = answer_logprobs(policy, tokenizer, records, batch_size)
        side_table = pd.DataFrame({
            "id": [str(r["id"]) for r in records],
            f"{side}_logp_policy": logp_policy,
            f"{side}_logp_reference": logp_reference,
            f"{side}_implicit_reward": [beta * (p - q) for p, q in zip(logp_policy, logp_reference)],
            # Fluency: per-token likelihood under the base model (the reference), the same model for
            # the base model's and the aligned model's answers.
            f"{side}_perplexity": [perplexity(q, n) for q, n in zip(logp_reference, answer_tokens(tokenizer, records))],
        })
        table = side_table if table is None else table.merge(side_table, on="id", validate="one_to_one")
        log.info("%s answers: mean implicit reward %.4f", side, side_table[f"{side}_implicit_reward"].mean())
    with atomic.atomic_path(rewards) as temp:
        table.round(6).to_csv(temp, index=False)
