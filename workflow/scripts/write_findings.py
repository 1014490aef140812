from dpo_study.smk import call

call("dpo_study.findings:write_findings", snakemake)  # noqa: F821 (set by Snakemake)
