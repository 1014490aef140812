rule implicit_reward:
    input:
        manifest=MODEL_MANIFEST,
        adapter=f"{RUN}/adapter",
        aligned_responses=STUDY.responses(RUN, "{prompt_set}"),
        base_responses=STUDY.responses(BASE, "{prompt_set}"),
    output:
        rewards=STUDY.rewards("{key}", "{prompt_set}"),
    log:
        f"{RESULTS}/logs/implicit_reward/{{key}}/{{prompt_set}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=1,
    params:
        beta=lambda wildcards: STUDY.experiment_params(wildcards.key).beta,
        model_settings=STUDY.model_settings.to_dict(),
        code=code("implicit_reward"),
    script:
        "../scripts/implicit_reward.py"
