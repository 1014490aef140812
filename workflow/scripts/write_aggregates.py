from dpo_study.smk import call

call("dpo_study.aggregate:write_aggregates", snakemake)  # noqa: F821 (set by Snakemake)
