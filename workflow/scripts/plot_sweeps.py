from dpo_study.runtime.smk import call

call("dpo_study.stages.plots:plot_sweeps", snakemake)  # noqa: F821 (set by Snakemake)
