"""User-facing errors: one line that names the file and the reason.

The CLI catches :class:`CloakError`, prints ``str(err)`` for the failed input and goes on with the
next one, so every message must read well on its own, e.g. ``photos/a.jpg: empty file``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CloakError", "ImageError"]


class CloakError(Exception):
    """A failure of one input that the user can act on.

    Args:
        path: the file the failure is about.
        reason: short lower-case reason, without the file name.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ImageError(CloakError):
    """A photo that cannot be read or written (empty, not an image, corrupt, too large, ...)."""
