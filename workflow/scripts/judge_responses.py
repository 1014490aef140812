from dpo_study.runtime.smk import call

call("dpo_study.stages.judge:judge_responses", snakemake)  # noqa: F821 (set by Snakemake)
