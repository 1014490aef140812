from dpo_study.smk import call

call("dpo_study.demo_model:build_demo_model", snakemake)  # noqa: F821 (set by Snakemake)
