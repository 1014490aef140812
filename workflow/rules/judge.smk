rule train_judge:
    input:
        unpack(judge_manifest_input),
        train=STUDY.train_data,
        texts=STUDY.judge_texts,
        holdout=STUDY.judge_holdout,
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
        cv_folds=judge_cv_folds,
        seed=judge_seed,
        code=code("train_judge"),
    script:
        "../scripts/train_judge.py"


# One job per model and prompt set, as for generation. The base model's answers and each run's have
# rules of their own: a single rule over the whole folder would need a wildcard that spans the run's
# path, and the SLURM plugin names its log folder after the joined wildcards (255 characters at most).
rule judge_aligned:
    input:
        unpack(judges_manifest_input),
        responses=STUDY.responses(RUN, "{prompt_set}"),
        prompts=STUDY.prompts("{prompt_set}"),
        judges=STUDY.judge_files(),
    output:
        stances=STUDY.stances(RUN, "{prompt_set}"),
    log:
        STUDY.stances_log(RUN, "{prompt_set}"),
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


use rule judge_aligned as judge_base with:
    input:
        unpack(judges_manifest_input),
        responses=STUDY.responses(BASE, "{prompt_set}"),
        prompts=STUDY.prompts("{prompt_set}"),
        judges=STUDY.judge_files(),
    output:
        stances=STUDY.stances(BASE, "{prompt_set}"),
    log:
        STUDY.stances_log(BASE, "{prompt_set}"),
