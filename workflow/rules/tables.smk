rule tables:
    input:
        base_stances=f"{MODEL_RESULTS}/base/stances.csv",
        summaries=STUDY.run_files("train_summary.json"),
        stances=STUDY.run_files("stances.csv"),
        rewards=STUDY.run_files("rewards.csv"),
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
    script:
        "../scripts/write_tables.py"


rule submission:
    input:
        base_responses=f"{MODEL_RESULTS}/base/responses.jsonl",
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
    script:
        "../scripts/write_submission.py"
