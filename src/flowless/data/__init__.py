"""Data: annotation formats (formats.py) -> records (annotations.py), validation hold-out,
video discovery, decoding of videos and frame folders, the clip plan, the clip dataset,
transforms, synthetic data."""
