"""Batched generation of answers to the prompt set, by the base model or base + a LoRA adapter."""

from __future__ import annotations

import logging
import time

import torch
from tqdm import tqdm

from dpo_study.config import artifacts
from dpo_study.stages.data import read_jsonl, write_jsonl
from dpo_study.runtime.decode import greedy_decode
from dpo_study.config.checks import check_decode
from dpo_study.config.settings import GenerationSettings, ModelSettings
from dpo_study.runtime import modeling
from dpo_study.runtime.modeling import end_of_turn_ids, load_tokenizer, read_manifest
from dpo_study.runtime.plans import JobPlan, device
from dpo_study.config.model import require_safetensors

log = logging.getLogger(__name__)


def decode_mode(model, generation: GenerationSettings) -> str:
    """``plain``: transformers' generate; ``static``: our greedy static-cache loop (decode.py);
    ``graph``: that loop replayed as a CUDA graph. ``auto``: graph for greedy decoding of an
    unquantized model with SDPA attention on a GPU, else plain."""
    check_decode(generation.to_dict())
    mode = generation.decode
    if mode == "graph" and model.device.type != "cuda":
        return "static"  # no CUDA graphs on a CPU: the same loop, run eagerly
    if mode != "auto":
        return mode
    quantized = getattr(model, "hf_quantizer", None) is not None
    sdpa = getattr(model.config, "_attn_implementation", "sdpa") == "sdpa"
    fits = model.device.type == "cuda" and not generation.do_sample and not quantized and sdpa
    return "graph" if fits else "plain"


def chat_text(tokenizer, record: dict) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "system", "content": record["system"]}, {"role": "user", "content": record["prompt"]}],
        tokenize=False,
        add_generation_prompt=True,
    )


def generation_kwargs(generation: GenerationSettings) -> dict:
    """transformers' generate arguments of the generation settings (temperature and top_p only when
    sampling: greedy decoding ignores them, and the parse refuses them then)."""
    kwargs = {"max_new_tokens": generation.max_new_tokens, "do_sample": generation.do_sample}
    if generation.do_sample:
        kwargs.update(temperature=generation.temperature, top_p=generation.top_p)
    return kwargs


def generate_answers(model, tokenizer, records: list[dict], generation: GenerationSettings) -> list[dict]:
    """Answers in the order of ``records``; left padding so a batch decodes in step.

    Sampling (``do_sample``) draws from ``generation.seed``: the same seed, the same answers."""
    tokenizer.padding_side = "left"
    stop_ids = end_of_turn_ids(tokenizer, model)
    batch_size = min(generation.batch_size, len(records)) or 1
    kwargs = generation_kwargs(generation)
    texts = [chat_text(tokenizer, r) for r in records]
    mode = decode_mode(model, generation)
    graphs = 0
    out = []
    model.eval()
    torch.manual_seed(generation.seed)
    for start in tqdm(range(0, len(records), batch_size), desc="generate", mininterval=5):
        batch = records[start : start + batch_size]
        # The chat template already starts with <|begin_of_text|>.
        encoded = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
        if mode == "plain":
            with torch.inference_mode():
                generated = model.generate(
                    **encoded, eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id, **kwargs
                )
            new_tokens = generated[:, encoded["input_ids"].shape[1] :]
        else:
            new_tokens, graphed = greedy_decode(model, encoded["input_ids"], encoded["attention_mask"],
                                                generation.max_new_tokens, stop_ids, use_graph=mode == "graph")
            graphs += graphed
        for record, tokens in zip(batch, new_tokens):
            tokens = tokens.tolist()
            ended = any(t in stop_ids for t in tokens)
            if ended:
                tokens = tokens[: min(tokens.index(t) for t in stop_ids if t in tokens)]
            text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            out.append({**record, "response": text, "new_tokens": len(tokens), "hit_max_new_tokens": not ended})
    log.info("decoded with %s%s", mode, f" ({graphs} CUDA graph batches)" if mode == "graph" else "")
    return out


def load_for_generation(manifest_path: str, model_settings: ModelSettings, adapter: str | None = None,
                        plan: JobPlan | None = None):
    """(model, tokenizer): the base in the precision the training jobs chose, with the adapter if given.
    ``plan``: the job's (its load plan decides the base's precision), else planned here."""
    if adapter:
        artifacts.check_adapter(adapter)  # before the base model loads
    manifest = read_manifest(manifest_path)
    tokenizer = load_tokenizer(manifest, model_settings)
    base = modeling.load_planned(plan.load) if plan is not None else modeling.load_base(manifest, model_settings)
    if adapter:
        from peft import PeftModel

        require_safetensors(adapter, "adapter folder")
        base = PeftModel.from_pretrained(base, adapter)
    return base, tokenizer


def generate_responses(
    manifest: str,
    prompts: str,
    responses: str,
    generation: GenerationSettings,
    model_settings: ModelSettings,
    adapter: str | None = None,
    threads: int = 1,
    plan: JobPlan | None = None,
) -> None:
    """Stage: answer every prompt of the prompt set; with ``adapter``, as the aligned model."""
    torch.set_num_threads(threads)
    base, tokenizer = load_for_generation(manifest, model_settings, adapter, plan)
    start = time.perf_counter()
    rows = generate_answers(base, tokenizer, read_jsonl(prompts), generation)
    seconds = time.perf_counter() - start
    tokens = sum(r["new_tokens"] for r in rows)
    log.info("generated %d answers, %d tokens in %.1f s (%.0f tok/s) on %s",
             len(rows), tokens, seconds, tokens / max(seconds, 1e-9), device())
    write_jsonl(rows, responses)
