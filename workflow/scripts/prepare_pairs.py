from dpo_study.data import write_pairs
from dpo_study.smk import call

call(write_pairs, snakemake)  # noqa: F821 (set by Snakemake)
