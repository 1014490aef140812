from dpo_study.judge import train_judge
from dpo_study.smk import call

call(train_judge, snakemake)  # noqa: F821 (set by Snakemake)
