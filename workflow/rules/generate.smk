rule generate_base:
    input:
        manifest=MODEL_MANIFEST,
        prompts=f"{RESULTS}/prompts.jsonl",
    output:
        responses=f"{MODEL_RESULTS}/base/responses.jsonl",
    log:
        f"{RESULTS}/logs/generate_base.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=1,
    params:
        generation=STUDY.generation_settings,
        model_settings=STUDY.model_settings,
    script:
        "../scripts/generate_responses.py"


rule generate_aligned:
    input:
        manifest=MODEL_MANIFEST,
        prompts=f"{RESULTS}/prompts.jsonl",
        adapter=f"{MODEL_RESULTS}/runs/{{key}}/adapter",
    output:
        responses=f"{MODEL_RESULTS}/runs/{{key}}/responses.jsonl",
    log:
        f"{RESULTS}/logs/generate_aligned/{{key}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=1,
    params:
        generation=STUDY.generation_settings,
        model_settings=STUDY.model_settings,
    script:
        "../scripts/generate_responses.py"


# The base model's own answers to the training prompts, for strategies that reject them (on_policy).
use rule generate_base as generate_base_train with:
    input:
        manifest=MODEL_MANIFEST,
        prompts=f"{RESULTS}/train_prompts.jsonl",
    output:
        responses=f"{MODEL_RESULTS}/base/train_responses.jsonl",
    log:
        f"{RESULTS}/logs/generate_base_train.log",
