from dpo_study.smk import call

call("dpo_study.plots:plot_sweeps", snakemake)  # noqa: F821 (set by Snakemake)
