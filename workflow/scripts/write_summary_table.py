from dpo_study.smk import call

call("dpo_study.report:write_summary_table", snakemake)  # noqa: F821 (set by Snakemake)
