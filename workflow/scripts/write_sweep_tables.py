from dpo_study.report import write_sweep_tables
from dpo_study.smk import call

call(write_sweep_tables, snakemake)  # noqa: F821 (set by Snakemake)
