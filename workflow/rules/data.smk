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
    script:
        "../scripts/prepare_pairs.py"


use rule prepare_pairs as prepare_model_pairs with:
    output:
        pairs=f"{MODEL_RESULTS}/pairs/{{data_key}}.jsonl",
    log:
        f"{RESULTS}/logs/prepare_pairs/{MODEL_SLUG}/{{data_key}}.log",


rule prepare_prompts:
    input:
        test=config["data"]["test"],
        probes=config["data"]["probes"],
    output:
        prompts=f"{RESULTS}/prompts.jsonl",
    log:
        f"{RESULTS}/logs/prepare_prompts.log",
    conda:
        ENV
    params:
        system_prompt=STUDY.system_prompt,
    script:
        "../scripts/prepare_prompts.py"


rule prepare_train_prompts:
    input:
        train=config["data"]["train"],
    output:
        prompts=f"{RESULTS}/train_prompts.jsonl",
    log:
        f"{RESULTS}/logs/prepare_train_prompts.log",
    conda:
        ENV
    params:
        system_prompt=STUDY.system_prompt,
    script:
        "../scripts/prepare_train_prompts.py"
