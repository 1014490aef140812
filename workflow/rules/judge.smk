rule train_judge:
    input:
        unpack(judge_manifest_input),
        train=config["data"]["train"],
        texts=config["judge"]["texts"],
        holdout=config["judge"]["holdout"],
    output:
        judge=f"{RESULTS}/judge/{{judge}}.joblib",
        accuracy=report(
            f"{RESULTS}/judge/{{judge}}_accuracy.json",
            caption="../report/judge_accuracy.rst",
            category="Judges",
        ),
    log:
        f"{RESULTS}/logs/train_judge/{{judge}}.log",
    conda:
        ENV
    threads: 2
    resources:
        gpu=judge_gpus,
    params:
        name=lambda wildcards: wildcards.judge,
        settings=judge_settings,
        cv_folds=config["judge"]["cv_folds"],
        seed=config["judge"]["seed"],
    script:
        "../scripts/train_judge.py"


rule judge_responses:
    input:
        unpack(judges_manifest_input),
        responses="{folder}/responses.jsonl",
        prompts=f"{RESULTS}/prompts.jsonl",
        judges=STUDY.judge_files(),
    output:
        stances="{folder}/stances.csv",
    log:
        "{folder}/judge_responses.log",
    wildcard_constraints:
        folder=f"{MODEL_RESULTS}/(base|runs/[^/]+)",
    conda:
        ENV
    threads: 2
    resources:
        gpu=int(any_judge_runs_model()),
    params:
        names=JUDGES,
        primary=PRIMARY_JUDGE,
    script:
        "../scripts/judge_responses.py"
