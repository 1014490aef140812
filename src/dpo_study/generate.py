"""Batched generation of answers to the prompt set, by the base model or base + a LoRA adapter."""

from __future__ import annotations

import logging
import time

import torch
from tqdm import tqdm

from dpo_study.data import read_jsonl, write_jsonl
from dpo_study.modeling import (
    device, end_of_turn_ids, load_model, load_tokenizer, read_manifest, require_safetensors,
)

log = logging.getLogger(__name__)


def generate_answers(model, tokenizer, records: list[dict], generation: dict) -> list[dict]:
    """Answers in the order of ``records``; left padding so a batch decodes in step."""
    tokenizer.padding_side = "left"
    stop_ids = end_of_turn_ids(tokenizer, model)
    batch_size = generation["batch_size"]
    kwargs = {"max_new_tokens": generation["max_new_tokens"], "do_sample": generation["do_sample"]}
    if generation["do_sample"]:
        kwargs.update(temperature=generation["temperature"], top_p=generation["top_p"])
    out = []
    model.eval()
    for start in tqdm(range(0, len(records), batch_size), desc="generate", mininterval=5):
        batch = records[start : start + batch_size]
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "system", "content": r["system"]}, {"role": "user", "content": r["prompt"]}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for r in batch
        ]
        # The chat template already starts with <|begin_of_text|>.
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            generated = model.generate(
                **encoded, eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id, **kwargs
            )
        new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        for record, tokens in zip(batch, new_tokens):
            tokens = tokens.tolist()
            ended = any(t in stop_ids for t in tokens)
            if ended:
                tokens = tokens[: min(tokens.index(t) for t in stop_ids if t in tokens)]
            text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            out.append({**record, "response": text, "new_tokens": len(tokens), "hit_max_new_tokens": not ended})
    return out


def generate_responses(
    model: str,
    prompts: str,
    responses: str,
    generation: dict,
    model_settings: dict,
    adapter: str | None = None,
    seed: int = 0,
    threads: int = 1,
) -> None:
    """Stage: answer every prompt of the prompt set; with ``adapter``, as the aligned model."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    manifest = read_manifest(model)
    tokenizer = load_tokenizer(manifest, model_settings)
    base = load_model(manifest, model_settings)
    if adapter:
        from peft import PeftModel

        require_safetensors(adapter, "adapter folder")
        base = PeftModel.from_pretrained(base, adapter)
    start = time.perf_counter()
    rows = generate_answers(base, tokenizer, read_jsonl(prompts), generation)
    seconds = time.perf_counter() - start
    tokens = sum(r["new_tokens"] for r in rows)
    log.info("generated %d answers, %d tokens in %.1f s (%.0f tok/s) on %s",
             len(rows), tokens, seconds, tokens / max(seconds, 1e-9), device())
    write_jsonl(rows, responses)
