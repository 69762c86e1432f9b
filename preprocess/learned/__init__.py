"""Learned preprocessing backends (Depth Anything, SAM, SAM2 video, CoTracker) behind plain-array interfaces.

Each backend module has a typed config, ``available(config) -> (bool, reason)`` (so ``auto`` can choose it only when
its library and weights are present, and say why not otherwise), a ``build_*`` factory that loads weights strictly,
and a predictor that holds the model and takes and returns arrays in the conventions of ``scene4d.contracts``.
"""
