from dpo_study.runtime.smk import call

call("dpo_study.stages.tables:write_submission", snakemake)  # noqa: F821 (set by Snakemake)
