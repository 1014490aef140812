from dpo_study.smk import call

call("dpo_study.report:write_response_tables", snakemake)  # noqa: F821 (set by Snakemake)
