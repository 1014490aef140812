from dpo_study.smk import call

call("dpo_study.tables:write_tables", snakemake)  # noqa: F821 (set by Snakemake)
