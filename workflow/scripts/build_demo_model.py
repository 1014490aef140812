from dpo_study.runtime.smk import call

call("dpo_study.stages.demo_model:build_demo_model", snakemake)  # noqa: F821 (set by Snakemake)
