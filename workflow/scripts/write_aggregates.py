from dpo_study.runtime.smk import call

call("dpo_study.stages.aggregate:write_aggregates", snakemake)  # noqa: F821 (set by Snakemake)
