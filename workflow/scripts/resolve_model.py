from dpo_study.runtime.smk import call

call("dpo_study.runtime.modeling:resolve_model", snakemake)  # noqa: F821 (set by Snakemake)
