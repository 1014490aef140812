from dpo_study.generate import generate_responses
from dpo_study.smk import call

call(generate_responses, snakemake)  # noqa: F821 (set by Snakemake)
