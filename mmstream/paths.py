"""Paths: why one named in a pipeline cannot be used, in the words a user acts on; and the
one way an output file is written (`PartialFile`).

`Path.exists()` is False for a loop of symbolic links and for a path behind a file, so "no such
file" would send the user looking for a file that is there; `os.stat`'s error says which.
"""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path


class PartialFile:
    """An output written as `<name>.partial` beside its target and renamed onto it only when
    complete, so a reader never sees half a file and a failed run leaves none where the
    output should be (replays, batch outputs, reports)."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.path = target.with_name(target.name + ".partial")

    def complete(self) -> Path:
        """The partial file is whole: it becomes the target (atomically, on one filesystem)."""
        self.path.replace(self.target)
        return self.target

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def missing_reason(path: Path, what: str = "file") -> str | None:
    """Why `path` cannot be reached ("no such file", "a loop of symbolic links", ...);
    None when it exists."""
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a loop of symbolic links"
        if exc.errno == errno.ENOENT:
            return f"a symbolic link to no {what}" if path.is_symlink() else f"no such {what}"
        if exc.errno == errno.ENOTDIR:
            return f"no such {what} (a part of the path is not a folder)"
        return (exc.strerror or str(exc)).lower()
    except ValueError:  # a NUL byte in the path
        return f"not a {what} name"
    return None
