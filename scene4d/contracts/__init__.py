"""Typed artefacts that cross stage boundaries, with validation and a documented on-disk layout."""
