"""Writing files so that a reader never sees half of one, and checking beforehand that they can be written."""

import os
import pathlib
import uuid
from typing import Optional, Union


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


def unwritable_reason(path: Union[str, pathlib.Path], directory: bool = False) -> Optional[str]:
    r"""
    Why ``path`` cannot be written, checked before a long computation whose result goes there.

    A file can be written if its folder exists and is writable (and the file itself, if it exists,
    is a writable file); a directory if it is an existing writable directory, or if its parent
    exists and is writable (it is then created).

    Args:
        path (str or pathlib.Path): The output file or directory.
        directory (bool): ``path`` is a directory (else a file). Default: False

    Returns:
        str or None: What is wrong (e.g. ``"the folder 'out' does not exist"``), or None if
        ``path`` can be written.

    Examples::

        >>> unwritable_reason("/no/such/folder/report.html")
        "the folder '/no/such/folder' does not exist"
    """
    path = pathlib.Path(path).expanduser()
    if path.exists():
        if directory and not path.is_dir():
            return f"{str(path)!r} exists and is a file, not a directory"
        if not directory and path.is_dir():
            return f"{str(path)!r} is a directory, not a file"
        if not os.access(path, os.W_OK | (os.X_OK if directory else 0)):
            return f"{str(path)!r} is not writable"
        if directory:
            return None
    parent = path.parent
    if not parent.exists():
        return f"the folder {str(parent)!r} does not exist"
    if not parent.is_dir():
        return f"{str(parent)!r} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the folder {str(parent)!r} is not writable"
    return None
