from dpo_study.runtime.smk import call

call("dpo_study.stages.findings:write_findings", snakemake)  # noqa: F821 (set by Snakemake)
