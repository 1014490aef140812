from dpo_study.smk import call

call("dpo_study.data:write_pairs", snakemake)  # noqa: F821 (set by Snakemake)
