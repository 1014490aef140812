from dpo_study.smk import call

call("dpo_study.measures:measure_answers", snakemake)  # noqa: F821 (set by Snakemake)
