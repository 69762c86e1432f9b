"""Score-distillation guidance (SDS) of novel object renders by a diffusion model, through diffusers.

``config`` and ``sds`` import only torch; ``loading``, ``guidance`` and ``conditioning`` import diffusers and
transformers (seconds), so import them only when guidance is on.
"""
