"""Writing files so that a reader never sees half of one."""

import os
import pathlib
import tempfile
from typing import Union


def atomic_write_text(path: Union[str, pathlib.Path], text: str) -> None:
    r"""
    Writes ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and an atomic
    rename, creating the folder if needed: a concurrent reader sees the old file or the new one, never
    a partial one. The file gets the permissions of a plain ``open(path, "w")`` (``0o666`` less the
    umask).

    Args:
        path (str or pathlib.Path): The file.
        text (str): Its new content.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
