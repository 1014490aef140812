rule implicit_reward:
    input:
        manifest=MODEL_MANIFEST,
        adapter=f"{MODEL_RESULTS}/runs/{{key}}/adapter",
        aligned_responses=f"{MODEL_RESULTS}/runs/{{key}}/responses.jsonl",
        base_responses=f"{MODEL_RESULTS}/base/responses.jsonl",
    output:
        rewards=f"{MODEL_RESULTS}/runs/{{key}}/rewards.csv",
    log:
        f"{RESULTS}/logs/implicit_reward/{{key}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=1,
    params:
        beta=lambda wildcards: RUNS[wildcards.key].params["beta"],
        model_settings=STUDY.model_settings,
    script:
        "../scripts/implicit_reward.py"
