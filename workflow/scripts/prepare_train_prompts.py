from dpo_study.data import write_train_prompts
from dpo_study.smk import call

call(write_train_prompts, snakemake)  # noqa: F821 (set by Snakemake)
