if MODEL == "demo":

    rule build_demo_model:
        input:
            train=config["data"]["train"],
            test=config["data"]["test"],
        output:
            model_dir=directory(f"{RESULTS}/models/demo"),
            manifest=f"{RESULTS}/models/demo.json",
        params:
            **config["demo_model"],
            system_prompt=config["data"]["system_prompt"],
        log:
            f"{RESULTS}/logs/build_demo_model.log",
        threads: 2
        conda:
            ENV
        script:
            "../scripts/build_demo_model.py"

else:

    # Runs where the job starts (on a cluster: the login node, which has the network).
    localrules:
        resolve_model,

    rule resolve_model:
        output:
            manifest=MODEL_MANIFEST,
        params:
            name=MODEL,
        log:
            f"{RESULTS}/logs/resolve_model.log",
        conda:
            ENV
        script:
            "../scripts/resolve_model.py"
