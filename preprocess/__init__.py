"""Preprocessing: video decoding, object masks, depth, point tracks and camera motion."""
