from dpo_study.train import train_adapter
from dpo_study.smk import call

call(train_adapter, snakemake)  # noqa: F821 (set by Snakemake)
