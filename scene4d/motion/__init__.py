"""Motion models: smooth time bases, control-point skinning (non-rigid), rigid object trajectories."""
