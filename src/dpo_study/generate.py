"""Batched generation of answers to the prompt set, by the base model or base + a LoRA adapter."""

from __future__ import annotations

import logging
import time

import torch
from tqdm import tqdm

from dpo_study.backends import gpu_memory_bytes, model_shape, weights_in_4bit
from dpo_study.data import read_jsonl, write_jsonl
from dpo_study.modeling import device, end_of_turn_ids, load_model, load_tokenizer, read_manifest

log = logging.getLogger(__name__)


# Below this size a decode step is too short for a compiled, graph-captured step to repay its
# compile time within one job (BENCHMARKS.md).
COMPILE_MIN_PARAMS = 1_000_000_000


def compiled_decode(model, generation: dict) -> bool:
    """Decode with a static cache, which transformers compiles into CUDA graphs on a GPU?"""
    setting = generation.get("compile", "auto")
    if getattr(model, "hf_quantizer", None) is not None and not model.hf_quantizer.is_compileable:
        return False  # bitsandbytes 4-bit cannot be compiled
    if setting == "auto":
        return model.device.type == "cuda" and model.num_parameters() >= COMPILE_MIN_PARAMS
    return bool(setting)


def chat_text(tokenizer, record: dict) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "system", "content": record["system"]}, {"role": "user", "content": record["prompt"]}],
        tokenize=False,
        add_generation_prompt=True,
    )


def generate_answers(model, tokenizer, records: list[dict], generation: dict) -> list[dict]:
    """Answers in the order of ``records``; left padding so a batch decodes in step.

    With a compiled decode every batch gets one shape (the longest prompt's width, a full batch),
    so transformers builds the static cache and captures the decode step once per job.
    """
    tokenizer.padding_side = "left"
    stop_ids = end_of_turn_ids(tokenizer, model)
    batch_size = min(generation["batch_size"], len(records)) or 1
    kwargs = {"max_new_tokens": generation["max_new_tokens"], "do_sample": generation["do_sample"]}
    if generation["do_sample"]:
        kwargs.update(temperature=generation["temperature"], top_p=generation["top_p"])
    texts = [chat_text(tokenizer, r) for r in records]
    padding = {"padding": True}
    if compiled_decode(model, generation):
        kwargs["cache_implementation"] = "static"
        width = max(len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"])
        padding = {"padding": "max_length", "max_length": width}
    out = []
    model.eval()
    for start in tqdm(range(0, len(records), batch_size), desc="generate", mininterval=5):
        batch = records[start : start + batch_size]
        batch_texts = texts[start : start + batch_size]
        if "cache_implementation" in kwargs:
            batch_texts += batch_texts[-1:] * (batch_size - len(batch_texts))  # fill the last batch's shape
        # The chat template already starts with <|begin_of_text|>.
        encoded = tokenizer(batch_texts, return_tensors="pt", add_special_tokens=False, **padding).to(model.device)
        with torch.inference_mode():
            generated = model.generate(
                **encoded, eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id, **kwargs
            )
        new_tokens = generated[: len(batch), encoded["input_ids"].shape[1] :]
        for record, tokens in zip(batch, new_tokens):
            tokens = tokens.tolist()
            ended = any(t in stop_ids for t in tokens)
            if ended:
                tokens = tokens[: min(tokens.index(t) for t in stop_ids if t in tokens)]
            text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            out.append({**record, "response": text, "new_tokens": len(tokens), "hit_max_new_tokens": not ended})
    return out


def load_for_generation(model: str, model_settings: dict, adapter: str | None = None):
    """(model, tokenizer): the base in the precision the training jobs chose, with the adapter if given."""
    manifest = read_manifest(model)
    tokenizer = load_tokenizer(manifest, model_settings)
    in_4bit = weights_in_4bit(model_settings, device=device(), gpu_bytes=gpu_memory_bytes(),
                              shape=model_shape(manifest["path"]) if device() == "cuda" else None)
    base = load_model(manifest, {**model_settings, "load_in_4bit": in_4bit})
    if adapter:
        from peft import PeftModel

        base = PeftModel.from_pretrained(base, adapter)
    return base, tokenizer


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
    base, tokenizer = load_for_generation(model, model_settings, adapter)
    start = time.perf_counter()
    rows = generate_answers(base, tokenizer, read_jsonl(prompts), generation)
    seconds = time.perf_counter() - start
    tokens = sum(r["new_tokens"] for r in rows)
    log.info("generated %d answers, %d tokens in %.1f s (%.0f tok/s) on %s",
             len(rows), tokens, seconds, tokens / max(seconds, 1e-9), device())
    write_jsonl(rows, responses)
