from dpo_study.plots import plot_stance_heatmap
from dpo_study.smk import call

call(plot_stance_heatmap, snakemake)  # noqa: F821 (set by Snakemake)
