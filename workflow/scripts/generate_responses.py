from dpo_study.runtime.smk import call

call("dpo_study.stages.generate:generate_responses", snakemake)  # noqa: F821 (set by Snakemake)
