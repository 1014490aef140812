# DPO Study: LoRA-DPO alignment studies, from preference data to comparison tables.
# Configure with config/config.yaml (the HW7 study) or config/demo.yaml (embedded demo model).


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/judge.smk"
include: "workflow/rules/reward.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        STUDY.all_outputs(),
