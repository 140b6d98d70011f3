"""User-facing error types.

A ``FlowlessError`` is a problem with the user's input (a file, an option, a config): the
CLI prints its message as one line and exits with code 2. Anything else is an internal
error (exit code 1). Messages name the offending file (and line) and say what to do.
"""

from __future__ import annotations

from pathlib import Path


class FlowlessError(Exception):
    """A user error: printed as one line, exit code 2."""

    exit_code = 2


class VideoError(FlowlessError):
    """A video file cannot be read (missing, empty, not a video, truncated, no frames)."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):  # picklable across DataLoader/multiprocessing workers
        return (type(self), (self.path, self.problem))


class AnnotationError(FlowlessError):
    """An annotation/split file is malformed; names the file and the 1-based line."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):  # picklable across DataLoader/multiprocessing workers
        return (type(self), (self.path, self.line, self.problem))


class ConfigError(FlowlessError):
    """A config file or override is invalid (unknown key, wrong type)."""


class CheckpointError(FlowlessError):
    """A checkpoint cannot be loaded safely or does not fit the model."""


class FlowError(FlowlessError):
    """Optical flow cannot be computed or read."""
