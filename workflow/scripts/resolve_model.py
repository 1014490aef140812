from dpo_study.smk import call

call("dpo_study.modeling:resolve_model", snakemake)  # noqa: F821 (set by Snakemake)
