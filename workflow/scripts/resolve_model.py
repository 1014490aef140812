from dpo_study.runtime.smk import call

call("dpo_study.stages.model_source:resolve_model", snakemake)  # noqa: F821 (set by Snakemake)
