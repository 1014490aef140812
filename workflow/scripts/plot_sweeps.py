from dpo_study.plots import plot_sweeps
from dpo_study.smk import call

call(plot_sweeps, snakemake)  # noqa: F821 (set by Snakemake)
