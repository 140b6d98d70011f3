"""Data: annotation formats, video decoding, clip sampling, transforms, datasets, synthetic data."""
