rule prepare_pairs:
    input:
        unpack(pairs_inputs),
    output:
        pairs=f"{RESULTS}/pairs/{{data_key}}.jsonl",
    log:
        f"{RESULTS}/logs/prepare_pairs/{{data_key}}.log",
    conda:
        ENV
    params:
        data=data_params,
        system_prompt=STUDY.system_prompt,
        code=code("prepare_pairs"),
    script:
        "../scripts/prepare_pairs.py"


# Pairs that reject the base model's own answers: under the answers they were built from.
use rule prepare_pairs as prepare_model_pairs with:
    output:
        pairs=f"{STUDY.answers_dir(BASE)}/pairs/{{data_key}}.jsonl",
    log:
        f"{RESULTS}/logs/prepare_pairs/{MODEL_SLUG}/{{data_key}}.log",


# One prompt set (the test prompts, or one probe file), so that an edit of one re-runs only its jobs.
rule prepare_prompts:
    input:
        source=prompt_set_input,
    output:
        prompts=STUDY.prompts("{prompt_set}"),
    log:
        f"{RESULTS}/logs/prepare_prompts/{{prompt_set}}.log",
    conda:
        ENV
    params:
        system_prompt=STUDY.system_prompt,
        kind=prompt_set_kind,
        code=code("prepare_prompts"),
    script:
        "../scripts/prepare_prompts.py"


rule prepare_train_prompts:
    input:
        train=STUDY.train_data,
    output:
        prompts=f"{RESULTS}/train_prompts.jsonl",
    log:
        f"{RESULTS}/logs/prepare_train_prompts.log",
    conda:
        ENV
    params:
        system_prompt=STUDY.system_prompt,
        code=code("prepare_train_prompts"),
    script:
        "../scripts/prepare_train_prompts.py"
