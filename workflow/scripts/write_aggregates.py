from dpo_study.aggregate import write_aggregates
from dpo_study.smk import call

call(write_aggregates, snakemake)  # noqa: F821 (set by Snakemake)
