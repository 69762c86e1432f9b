"""Per-object fitting: initialisation, the staged optimisation loop and its outputs."""
