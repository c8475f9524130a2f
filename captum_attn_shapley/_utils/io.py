"""Writing files so that a reader never sees half of one."""

import os
import pathlib
import tempfile
from typing import Union


def atomic_write_text(path: Union[str, pathlib.Path], text: str) -> None:
    r"""
    Writes ``text`` to ``path`` through a temporary file in the same folder and an atomic rename,
    creating the folder if needed: a concurrent reader sees the old file or the new one, never a
    partial one.

    Args:
        path (str or pathlib.Path): The file.
        text (str): Its new content.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
