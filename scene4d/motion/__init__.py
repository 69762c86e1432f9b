"""Motion models: smooth time bases, non-rigid deformations (control-point skinning, hexplane fields), rigid
object trajectories."""
