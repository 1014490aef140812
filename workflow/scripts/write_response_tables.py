from dpo_study.runtime.smk import call

call("dpo_study.stages.report:write_response_tables", snakemake)  # noqa: F821 (set by Snakemake)
