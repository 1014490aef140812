rule train_judge:
    input:
        train=config["data"]["train"],
    output:
        judge=f"{RESULTS}/judge/ngram.joblib",
        accuracy=report(
            f"{RESULTS}/judge/ngram_accuracy.json",
            caption="../report/judge_accuracy.rst",
            category="Judges",
        ),
    log:
        f"{RESULTS}/logs/train_judge.log",
    conda:
        ENV
    params:
        cv_folds=config["judge"]["cv_folds"],
        seed=config["judge"]["seed"],
    script:
        "../scripts/train_judge.py"


rule judge_responses:
    input:
        responses="{folder}/responses.jsonl",
        judge=f"{RESULTS}/judge/ngram.joblib",
    output:
        stances="{folder}/stances.csv",
    log:
        "{folder}/judge_responses.log",
    wildcard_constraints:
        folder=f"{MODEL_RESULTS}/(base|runs/[^/]+)",
    conda:
        ENV
    script:
        "../scripts/judge_responses.py"
