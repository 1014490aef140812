from dpo_study.tables import write_tables
from dpo_study.smk import call

call(write_tables, snakemake)  # noqa: F821 (set by Snakemake)
