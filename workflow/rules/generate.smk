# One job per model and prompt set (the test prompts, each probe file).
rule generate_base:
    input:
        manifest=MODEL_MANIFEST,
        prompts=STUDY.prompts("{prompt_set}"),
    output:
        responses=STUDY.responses(BASE, "{prompt_set}"),
    log:
        f"{RESULTS}/logs/generate_base/{{prompt_set}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=1,
    params:
        generation=STUDY.generation_settings.to_dict(),
        model_settings=STUDY.model_settings.to_dict(),
        code=code("generate_responses"),
    script:
        "../scripts/generate_responses.py"


rule generate_aligned:
    input:
        manifest=MODEL_MANIFEST,
        prompts=STUDY.prompts("{prompt_set}"),
        adapter=f"{RUN}/adapter",
    output:
        responses=STUDY.responses(RUN, "{prompt_set}"),
    log:
        f"{RESULTS}/logs/generate_aligned/{{key}}/{{prompt_set}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=1,
    params:
        generation=STUDY.generation_settings.to_dict(),
        model_settings=STUDY.model_settings.to_dict(),
        code=code("generate_responses"),
    script:
        "../scripts/generate_responses.py"


# The base model's own answers to the training prompts, for strategies that reject them (on_policy).
use rule generate_base as generate_base_train with:
    input:
        manifest=MODEL_MANIFEST,
        prompts=f"{RESULTS}/train_prompts.jsonl",
    output:
        responses=STUDY.train_responses,
    log:
        f"{RESULTS}/logs/generate_base_train.log",
