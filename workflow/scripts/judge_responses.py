from dpo_study.judge import judge_responses
from dpo_study.smk import call

call(judge_responses, snakemake)  # noqa: F821 (set by Snakemake)
