from dpo_study.smk import call

call("dpo_study.judge:judge_responses", snakemake)  # noqa: F821 (set by Snakemake)
