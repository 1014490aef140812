rule tables:
    input:
        base_stances=STUDY.base_stances(),
        summaries=STUDY.run_files("train_summary.json"),
        stances=STUDY.run_stances(),
        rewards=STUDY.run_rewards(),
    output:
        experiments_csv=report(
            f"{RESULTS}/tables/experiments.csv",
            caption="../report/experiments.rst",
            category="Tables",
        ),
        experiments_md=f"{RESULTS}/tables/experiments.md",
        responses_csv=report(
            f"{RESULTS}/tables/responses.csv",
            caption="../report/responses.rst",
            category="Tables",
        ),
        responses_md=f"{RESULTS}/tables/responses.md",
    log:
        f"{RESULTS}/logs/tables.log",
    conda:
        ENV
    params:
        experiment_records=STUDY.experiment_records(),
        prompt_sets=list(STUDY.prompt_sets),
        relevance_model=STUDY.relevance_model,
        code=code("write_tables"),
    script:
        "../scripts/write_tables.py"


rule submission:
    input:
        base_responses=STUDY.responses(BASE, "test"),
        aligned_responses=aligned_responses,
    output:
        submission=report(
            f"{RESULTS}/submissions/{{experiment}}.json",
            caption="../report/submission.rst",
            category="Submissions",
        ),
    log:
        f"{RESULTS}/logs/submission/{{experiment}}.log",
    conda:
        ENV
    params:
        experiment=named_experiment_params,
        code=code("write_submission"),
    script:
        "../scripts/write_submission.py"
