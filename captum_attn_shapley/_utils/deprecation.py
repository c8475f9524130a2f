"""Renamed keyword arguments: the old name keeps working for one release, with a FutureWarning."""

import functools
import warnings
from typing import Any, Callable, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


def renamed_keyword(old: str, new: str) -> Callable[[F], F]:
    r"""
    Accepts ``old=`` as a deprecated alias of the keyword argument ``new=``.

    Args:
        old (str): The former keyword.
        new (str): The keyword that replaces it.

    Returns:
        Callable: A decorator; the decorated function warns (``FutureWarning``, naming ``new``)
        when called with ``old=``, and raises ``TypeError`` when given both.

    Examples::

        >>> @renamed_keyword("replacement", "baselines")
        ... def metric(inputs, baselines="mask"): ...
        >>> metric(ids, replacement="pad")   # FutureWarning: use `baselines=`
    """

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(
                        f"{func.__name__}() got both `{old}=` (deprecated) and `{new}=`: pass only `{new}=`."
                    )
                warnings.warn(
                    f"{func.__name__}(): `{old}=` is deprecated and will be removed in the next release; "
                    f"use `{new}=` instead.",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return cast(F, wrapper)

    return decorate
