# Per answer file (one model, one prompt set): every measure that needs no judge, once (dpo_study.stages.measures).
# The base model's answers and each run's have rules of their own, as for the judges.
rule measure_aligned:
    input:
        responses=STUDY.responses(RUN, "{prompt_set}"),
        prompts=STUDY.prompt_files(),  # relevance contrasts with every prompt the model answered
    output:
        measures=STUDY.measures(RUN, "{prompt_set}"),
    log:
        f"{RESULTS}/logs/measure_aligned/{{key}}/{{prompt_set}}.log",
    conda:
        ENV
    params:
        relevance_model=STUDY.relevance_model,
        code=code("measure_answers"),
    script:
        "../scripts/measure_answers.py"


use rule measure_aligned as measure_base with:
    input:
        responses=STUDY.responses(BASE, "{prompt_set}"),
        prompts=STUDY.prompt_files(),
    output:
        measures=STUDY.measures(BASE, "{prompt_set}"),
    log:
        f"{RESULTS}/logs/measure_base/{{prompt_set}}.log",


# A join: each file by name from the study manifest (Study.tables_manifest), nothing measured again.
rule tables:
    input:
        files=STUDY.tables_inputs(),
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
        study=STUDY.tables_manifest(),
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
