"""flowless: learn motion from optical flow at training time, run without flow at test time."""

__version__ = "0.1.0"
