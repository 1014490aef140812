from dpo_study.data import write_prompts
from dpo_study.smk import call

call(write_prompts, snakemake)  # noqa: F821 (set by Snakemake)
