"""The face package's errors: one type per kind of outside input, so callers can decide.

* :class:`PortraitError`: bytes that are not an image we can use (a document's DG2, a file given
  to the CLI, a frame that is not RGB).
* :class:`FaceSettingsError`: the ``[face]`` configuration cannot be used; names the key.
* :class:`FaceModelError`: a model file is missing or is not the one whose digest we recorded.

All three derive from :class:`FaceError`, so a caller that only needs "the face check could not
run" catches one type.
"""

from __future__ import annotations

__all__ = ["FaceError", "FaceModelError", "FaceSettingsError", "PortraitError"]


class FaceError(Exception):
    """Base of every error this package raises on purpose."""


class PortraitError(FaceError, ValueError):
    """An image (file, DG2 portrait, camera frame) that cannot be decoded or used."""


class FaceModelError(FaceError, RuntimeError):
    """A model file is missing, unreadable, or does not match its recorded SHA-256."""


class FaceSettingsError(FaceError, ValueError):
    """The face settings cannot be used; ``path`` names the key (``face.thresholds.Sharpness``)."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)
