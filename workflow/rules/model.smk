if MODEL == "demo":

    rule build_demo_model:
        input:
            train=config["data"]["train"],
            test=config["data"]["test"],
        output:
            model_dir=directory(f"{RESULTS}/models/demo"),
            manifest=f"{RESULTS}/models/demo.json",
        log:
            f"{RESULTS}/logs/build_demo_model.log",
        conda:
            ENV
        threads: 2
        params:
            **STUDY.demo_model_settings,
            system_prompt=STUDY.system_prompt,
        script:
            "../scripts/build_demo_model.py"

else:

    # Runs where the job starts (on a cluster: the login node, which has the network).
    localrules:
        resolve_model,

    rule resolve_model:
        output:
            manifest=MODEL_MANIFEST,
        log:
            f"{RESULTS}/logs/resolve_model.log",
        conda:
            ENV
        params:
            name=MODEL,
            target_modules=STUDY.training_settings["target_modules"],
        script:
            "../scripts/resolve_model.py"
