from dpo_study.plots import plot_length_vs_epochs
from dpo_study.smk import call

call(plot_length_vs_epochs, snakemake)  # noqa: F821 (set by Snakemake)
