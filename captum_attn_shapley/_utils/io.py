"""Writing files so that a reader never sees half of one."""

import os
import pathlib
import uuid
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
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    # a new file created with mode 0o666, which the umask reduces, like open(path, "w")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
