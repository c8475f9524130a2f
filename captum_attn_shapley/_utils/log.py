"""Captum's usage-logging decorator ``captum.log.log_usage``, with a signature the type checker can read.

Captum ships no type information, so its decorator is untyped and would erase the signature of every method
it decorates. At run time this module re-exports Captum's own decorator unchanged; only the type checker
sees the typed declaration below: a decorator that returns the function it is given, with its signature.
"""

from typing import TYPE_CHECKING, Any, Callable, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

if TYPE_CHECKING:

    def log_usage(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
        """Captum's ``log_usage(...)``: a decorator that keeps the decorated function's signature."""

else:
    from captum.log import log_usage

__all__ = ["log_usage"]
