from dpo_study.smk import call

call("dpo_study.tables:write_submission", snakemake)  # noqa: F821 (set by Snakemake)
