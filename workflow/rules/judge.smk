rule train_judge:
    input:
        unpack(judge_manifest_input),
        train=config["data"]["train"],
        texts=config["judge"]["texts"],
        holdout=config["judge"]["holdout"],
    output:
        judge=f"{STUDY.judge_dir}/{{judge}}.joblib",
        accuracy=report(
            f"{STUDY.judge_dir}/{{judge}}_accuracy.json",
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
        code=code("train_judge"),
    script:
        "../scripts/train_judge.py"


rule judge_responses:
    input:
        unpack(judges_manifest_input),
        responses="{folder}/responses/{prompt_set}.jsonl",
        prompts=STUDY.prompts("{prompt_set}"),
        judges=STUDY.judge_files(),
    output:
        stances=f"{{folder}}/judge-{JUDGE_KEY}/stances/{{prompt_set}}.csv",
    log:
        f"{{folder}}/judge-{JUDGE_KEY}/stances/{{prompt_set}}.log",
    wildcard_constraints:
        folder=STUDY.answers_pattern(),
    conda:
        ENV
    threads: 2
    resources:
        gpu=int(any_judge_runs_model()),
    params:
        names=JUDGES,
        primary=PRIMARY_JUDGE,
        code=code("judge_responses"),
    script:
        "../scripts/judge_responses.py"
