"""The pipeline's stages, one module each, called by the rules through runtime.smk."""
