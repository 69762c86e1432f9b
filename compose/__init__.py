"""Composition of objects and background, novel views, exports and the end-to-end pipeline."""
