"""Data: annotation formats, video discovery and decoding, the clip plan, the clip dataset,
transforms, synthetic data."""
