"""Generation, two ways, each in its own process (Unsloth patches transformers for the whole process).

loop: the notebook's way: Unsloth 4-bit base + LoRA adapter, ``FastLanguageModel.for_inference``,
      one ``generate`` call per prompt, over the first K prompts (its speed does not depend on K).
project: the pipeline's way (dpo_study.stages.generate): the base in the precision the recipe picks, the
      adapter, batched greedy decoding; runs the given generation.decode modes one after another
      in one process (the first is what a job pays: kernels load, cuBLAS starts).

    python bench/generate_job.py loop MANIFEST PROMPTS K OUT.json
    python bench/generate_job.py project MANIFEST PROMPTS ADAPTER OUT.json auto,plain,static
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from train_job import defaults  # noqa: E402


def model_settings():
    """The model settings a study of the schema's defaults gives its jobs."""
    from dpo_study.config.settings import ModelSettings

    model = {k: v for k, v in defaults("model").items() if k != "name"}
    return ModelSettings.from_dict({**model, "recipe": defaults("training")["recipe"]})


def loop(manifest: str, prompts: str, k: str, out: str) -> None:
    from dpo_study.runtime.backends import import_unsloth

    import_unsloth()
    import torch
    from unsloth import FastLanguageModel

    from dpo_study.stages.data import read_jsonl
    from dpo_study.runtime.modeling import end_of_turn_ids, load_tokenizer, read_manifest

    start = time.perf_counter()
    manifest_data = read_manifest(manifest)
    model_cfg, training, experiment = defaults("model"), defaults("training"), defaults("defaults")
    model, _ = FastLanguageModel.from_pretrained(
        model_name=manifest_data["path"], max_seq_length=model_cfg["max_seq_length"], dtype=torch.bfloat16,
        load_in_4bit=True,
    )
    model = FastLanguageModel.get_peft_model(
        model, r=experiment["lora_r"], lora_alpha=experiment["lora_alpha"], lora_dropout=training["lora_dropout"],
        target_modules=training["target_modules"], bias="none", use_gradient_checkpointing="unsloth",
        random_state=experiment["seed"],
    )
    FastLanguageModel.for_inference(model)
    tokenizer = load_tokenizer(manifest_data, model_settings())
    stop_ids = end_of_turn_ids(tokenizer, model)
    load_seconds = time.perf_counter() - start
    records = read_jsonl(prompts)[: int(k)]
    tokens = 0
    torch.cuda.synchronize()
    start = time.perf_counter()
    for record in records:
        messages = [{"role": "system", "content": record["system"]}, {"role": "user", "content": record["prompt"]}]
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True).to("cuda")
        output = model.generate(**inputs, max_new_tokens=128, do_sample=False, use_cache=True,
                                eos_token_id=stop_ids, pad_token_id=tokenizer.pad_token_id)
        tokens += output.shape[1] - inputs["input_ids"].shape[1]
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    Path(out).write_text(json.dumps({
        "prompts": len(records), "tokens": int(tokens), "seconds": round(seconds, 2),
        "tok_s": round(tokens / seconds, 1), "load_seconds": round(load_seconds, 1),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }, indent=2))


def project(manifest: str, prompts: str, adapter: str, out: str, settings: str) -> None:
    from dpo_study.runtime import smk

    from dpo_study.config.settings import GenerationSettings

    smk.claim_gpu()
    import torch

    from dpo_study.stages.data import read_jsonl
    from dpo_study.stages.generate import decode_mode, generate_answers, load_for_generation

    start = time.perf_counter()
    model, tokenizer = load_for_generation(manifest, model_settings(), adapter)
    report = {"load_seconds": round(time.perf_counter() - start, 1), "runs": []}
    on_gpu = torch.cuda.is_available()
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    records = read_jsonl(prompts)
    previous = {}
    for mode in settings.split(","):
        generation = GenerationSettings.from_dict({**defaults("generation"), "decode": mode})
        sync()
        start = time.perf_counter()
        rows = generate_answers(model, tokenizer, records, generation)
        sync()
        seconds = time.perf_counter() - start
        tokens = sum(r["new_tokens"] for r in rows)
        run = {"decode": mode, "ran": decode_mode(model, generation), "prompts": len(rows), "tokens": tokens,
               "seconds": round(seconds, 2), "tok_s": round(tokens / seconds, 1)}
        # Greedy answers compared with the earlier runs: graph and static run the same kernels, so they
        # must agree exactly; plain generate's attention kernels differ, and on a random-weight model
        # (nearly flat logits) bf16 rounding then splits near-ties.
        for other, other_rows in previous.items():
            run[f"same_answers_as_{other}"] = sum(a["response"] == b["response"] for a, b in zip(rows, other_rows))
        previous[mode] = rows
        report["runs"].append(run)
        print(json.dumps(run), flush=True)
    report["agreement_with_full_forward"] = {
        mode: argmax_agreement(model, tokenizer, records[:16], mode) for mode in ("graph", "plain")
    }
    print(json.dumps(report["agreement_with_full_forward"]), flush=True)
    report["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None
    Path(out).write_text(json.dumps(report, indent=2))


def argmax_agreement(model, tokenizer, records: list[dict], mode: str) -> dict:
    """How often each generated token is the argmax of a plain full-sequence forward pass (no cache).

    The check of the decode path on a random-weight model, whose nearly flat logits make exact
    answer comparisons meaningless (one bf16 rounding splits a near-tie and the answers part): a
    correct path picks the reference argmax, or a token within rounding of it, at every position.
    """
    import torch

    from dpo_study.runtime.decode import greedy_decode
    from dpo_study.stages.generate import chat_text
    from dpo_study.runtime.modeling import end_of_turn_ids

    tokenizer.padding_side = "left"
    encoded = tokenizer([chat_text(tokenizer, r) for r in records], return_tensors="pt", padding=True,
                        add_special_tokens=False).to(model.device)
    stop_ids = end_of_turn_ids(tokenizer, model)
    with torch.inference_mode():
        if mode == "plain":
            new = model.generate(**encoded, max_new_tokens=128, do_sample=False, eos_token_id=stop_ids,
                                 pad_token_id=tokenizer.pad_token_id)[:, encoded["input_ids"].shape[1]:]
        else:
            new, _ = greedy_decode(model, encoded["input_ids"], encoded["attention_mask"], 128, stop_ids,
                                   use_graph=mode == "graph")
        ids = torch.cat([encoded["input_ids"], new], dim=1)
        mask = torch.cat([encoded["attention_mask"], torch.ones_like(new)], dim=1)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, encoded["input_ids"].shape[1] - 1 : -1].float()
    chosen = logits.gather(-1, new[..., None]).squeeze(-1)
    gap = logits.max(-1).values - chosen
    return {"tokens": gap.numel(), "argmax_share": round((gap == 0).float().mean().item(), 4),
            "within_0.1_share": round((gap <= 0.1).float().mean().item(), 4),
            "max_gap": round(gap.max().item(), 3), "logit_std": round(logits.std().item(), 3)}


if __name__ == "__main__":
    {"loop": loop, "project": project}[sys.argv[1]](*sys.argv[2:])
