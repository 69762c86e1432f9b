"""Which frames an evaluation hides from every fitting stage: every n-th, counting from frame n - 1."""

from __future__ import annotations


def hidden_frames(num_frames: int, every: int) -> list[int]:
    """Frames hidden by ``holdout_every = every``: 3, 7, 11, ... for 4; none for ``every <= 0``."""
    return [] if every <= 0 else [f for f in range(num_frames) if f % every == every - 1]


def fitted_frames(num_frames: int, every: int) -> list[int]:
    """The other frames, in order."""
    hidden = set(hidden_frames(num_frames, every))
    return [f for f in range(num_frames) if f not in hidden]
