"""Long-term 2D point tracks per object and on the background (weight-free: chained dense optical flow)."""

from preprocess.tracks.config import TracksConfig
from preprocess.tracks.contact_sheet import contact_sheet_tracks
from preprocess.tracks.stage import track_points

__all__ = ["TracksConfig", "contact_sheet_tracks", "track_points"]
