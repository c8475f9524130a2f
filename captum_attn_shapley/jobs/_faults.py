"""A fault to inject into a dataset job's workers, for testing the engines' retries: the process that
is about to compute a given shard exits at once, the first time only.

Set ``CAPTUM_ATTN_SHAPLEY_JOB_CRASH="INDEX:MARKER"`` in the environment the workers inherit: the first
worker to reach shard ``INDEX`` creates the file ``MARKER`` and calls ``os._exit(1)`` (as a killed process
would, with no clean-up); any later attempt finds the marker and computes the shard. The library never
sets the variable.
"""

import os
import pathlib

#: The environment variable of the fault.
CRASH_ENV = "CAPTUM_ATTN_SHAPLEY_JOB_CRASH"


def maybe_crash(index: int) -> None:
    r"""
    Ends this process with status 1 if :data:`CRASH_ENV` names ``index`` and its marker file does not
    exist yet (creating the marker first, so that the retry goes through).

    Args:
        index (int): The shard this process is about to compute.

    Raises:
        ValueError: If the variable is set but not ``INDEX:MARKER``.
    """
    value = os.environ.get(CRASH_ENV)
    if not value:
        return
    shard, sep, marker = value.partition(":")
    if not sep or not shard.isdigit() or not marker:
        raise ValueError(f"{CRASH_ENV}={value!r} is not INDEX:MARKER, e.g. '1:/tmp/crashed-once'.")
    if int(shard) != index:
        return
    try:
        fd = os.open(pathlib.Path(marker), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os._exit(1)
