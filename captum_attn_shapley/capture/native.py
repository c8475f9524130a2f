#!/usr/bin/env python3
"""The capture's compiled CPU kernels (``csrc/attention_kernels.cpp``), built on first use.

The fused capture computes the probabilities itself in two passes over every query row: the attention-only
forward pass (Att, the pairwise games; :meth:`.fused.FusedRecorder.attend`) and the reducing backward pass of
the gradient variants (:func:`.fused_backward.attention_backward`). Their Python block loops move every head's
``T x T`` blocks through memory several times; the compiled kernels run all heads of a tile of query rows
while the tile stays in the core's cache and write only the head mean the reduction reads. At 2,048 tokens
(MiniLM, batch 2, one layer, same run) the forward kernel takes about 1.2x the time of the fused ``sdpa``
kernel (the Python loop 2.7x), the backward kernel about 1.3x ``sdpa``'s backward (the loop 1.8x).

The kernels are compiled with :func:`torch.utils.cpp_extension.load` the first time a capture needs them (about
30 seconds) into the package's cache directory, keyed by the source, the flags, torch's version and the
processor, and loaded from there afterwards. They need a C++ compiler and a torch linked with a BLAS that
exports ``sgemm_`` (the x86 CPU wheels, MKL). Where they cannot be built, or with
``CAPTUM_ATTN_SHAPLEY_NATIVE=0``, the capture uses the Python loops: the same numbers to float32 round-off,
only slower.
"""

import hashlib
import logging
import os
import pathlib
import platform
import threading
from types import ModuleType
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Tuple

import torch
from torch import Tensor

from captum_attn_shapley._utils.cache import cache_dir
from captum_attn_shapley.capture.workspace import workspace

if TYPE_CHECKING:
    from captum_attn_shapley.capture.fused import AttentionCall
    from captum_attn_shapley.capture.reductions import InfluenceReducer

_LOG = logging.getLogger(__name__)
_SOURCE = pathlib.Path(__file__).with_name("csrc") / "attention_kernels.cpp"
_LOCK = threading.Lock()
_STATE: Dict[str, Any] = {}

#: Environment variable: ``0`` keeps the capture on its Python loops.
ENV_SWITCH = "CAPTUM_ATTN_SHAPLEY_NATIVE"

#: Query rows of one task of the kernel (its scores, ``TILE x T`` floats, stay in the core's cache).
TILE = 64
#: The same for the backward kernel (three ``BACKWARD_TILE x T`` temporaries; taller tiles give its key and
#: value gradients longer products).
BACKWARD_TILE = 64


def attend(call: "AttentionCall", reducer: "InfluenceReducer", layer: int, budget: int) -> Optional[Tensor]:
    r"""
    One attention call's output, its head-averaged probabilities added to ``reducer`` as they are computed, by
    the compiled kernel.

    Args:
        call (AttentionCall): The call (its query, key, value, mask and scale).
        reducer (InfluenceReducer): Receives the head mean of every query row, in blocks of rows.
        layer (int): The call's layer index.
        budget (int): Elements of one block of head-averaged rows (``batch x rows x T``).

    Returns:
        Tensor or None: The output ``(batch, queries, heads, dim)`` float32, or None where the kernel does not
        apply (not on a CPU, or not available): the caller then runs its Python loop.
    """
    module = kernels() if call.query.device.type == "cpu" else None
    if module is None:
        return None
    query, key, value, mask = _operands(call)
    batch, heads, num_queries, _ = query.shape
    num_keys = key.shape[2]
    output = torch.empty(batch, num_queries, heads, value.shape[-1], dtype=torch.float32)
    reducer.resolve(batch, num_keys, query.device)
    for rows, mean in _row_blocks(batch, num_queries, num_keys, budget):
        start, stop = rows.start, rows.stop
        module.attend_rows(query, key, value, mask, call.causal, call.scaling, start, stop, output, mean, TILE)
        reducer.add_mean(layer, rows, mean)
    return output


def reducing_backward(
    call: "AttentionCall",
    output: Tensor,
    grad_output: Tensor,
    reducer: "InfluenceReducer",
    layer: int,
    want: Tuple[bool, ...],
    budget: int,
) -> Optional[Tuple[Optional[Tensor], ...]]:
    r"""
    The input gradients of one attention call, its weighted attention (``A * relu(dA)``, ``A * dA`` when the
    request is signed) added to ``reducer`` on the way, by the compiled kernel (the steps of
    :func:`~.fused_backward.attention_backward`, whose Python loop is the reference).

    Args:
        call (AttentionCall): The call.
        output (Tensor): Its output ``(batch, queries, heads, dim)``.
        grad_output (Tensor): The gradient w.r.t. the output (same shape).
        reducer (InfluenceReducer): Receives the head mean of the weighted rows, in blocks of rows.
        layer (int): The call's layer index.
        want (tuple[bool, bool, bool]): Which of query, key, value need a gradient.
        budget (int): Elements of one block of head-averaged rows (``batch x rows x T``).

    Returns:
        tuple or None: The gradients of query, key and value, ``(batch, heads, tokens, dim)`` with one key/value
        head per query head (None where not wanted), or None where the kernel does not apply.
    """
    module = kernels() if call.query.device.type == "cpu" else None
    if module is None:
        return None
    query, key, value, mask = _operands(call)
    d_out = grad_output.transpose(1, 2).float().contiguous()
    delta = (d_out * output.transpose(1, 2).float()).sum(dim=-1).contiguous()
    batch, _, num_queries, _ = query.shape
    num_keys = key.shape[2]
    grads = [torch.zeros(t.shape) if wanted else torch.empty(0) for t, wanted in zip((query, key, value), want)]
    reducer.resolve(batch, num_keys, query.device)
    signed = reducer.request.signed
    for rows, weighted in _row_blocks(batch, num_queries, num_keys, budget):
        start, stop = rows.start, rows.stop
        module.reducing_backward_rows(
            query,
            key,
            value,
            mask,
            call.causal,
            call.scaling,
            d_out,
            delta,
            start,
            stop,
            signed,
            *want,
            *grads,
            weighted,
            BACKWARD_TILE,
        )
        reducer.add_mean(layer, rows, weighted)
    return tuple(g if wanted else None for g, wanted in zip(grads, want))


def _row_blocks(batch: int, num_queries: int, num_keys: int, budget: int) -> Iterator[Tuple[slice, Tensor]]:
    """Blocks of query rows of every example, each with a view of one reused float32 buffer of
    ``(batch, rows, keys)`` for the block's head means: at most ``budget`` elements (at least one row)."""
    step = max(1, min(num_queries, budget // max(batch * num_keys, 1)))
    buffer: Optional[Tensor] = None
    for start in range(0, num_queries, step):
        stop = min(start + step, num_queries)
        buffer, block = workspace(buffer, (batch, stop - start, num_keys), torch.empty(0))
        yield slice(start, stop), block


def _operands(call: "AttentionCall") -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Query, key and value as the kernels read them (float32, one key/value head per query head)
    and the mask, boolean (true = attend) or additive float32, as a ``(batch, heads, queries, keys)`` view
    (empty without a mask)."""
    # the products read each token's row in place (the model's layout): no copy unless a row is strided
    query, key, value = (t if t.stride(-1) == 1 else t.contiguous() for t in call.operands())
    mask = torch.empty(0)
    if call.mask is not None:
        mask = call.mask if call.mask.dtype == torch.bool else call.mask.float()
        mask = mask.expand(query.shape[0], query.shape[1], query.shape[2], key.shape[2])
        mask = mask if mask.stride(-1) == 1 else mask.contiguous()
    return query, key, value, mask


def kernels() -> Optional[ModuleType]:
    r"""
    The compiled kernels, built on the first call; None where they are switched off or cannot be built.

    Returns:
        module or None: The extension (its ``attend_rows``), or None (:func:`status` says why).
    """
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    if "module" not in _STATE:  # every attention call asks: the lock only until the first build is done
        with _LOCK:
            if "module" not in _STATE:
                module, _STATE["reason"] = _build()
                _STATE["module"] = module  # last: its key is what the unlocked check reads
    return _STATE["module"]  # type: ignore[no-any-return]


def status() -> str:
    """Whether the compiled kernels are in use, and if not, why (builds them if not yet tried)."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return f"switched off ({ENV_SWITCH}=0)"
    module = kernels()
    return "in use" if module is not None else f"not available: {_STATE['reason']}"


def _capability() -> str:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # older torch
        return "DEFAULT"


def _build() -> "tuple[Optional[ModuleType], str]":
    if not torch.backends.mkl.is_available():  # type: ignore[no-untyped-call]
        return None, "torch is not linked with MKL (its sgemm_ is what the kernel calls)"
    capability = _capability()
    flags = ["-O3", "-fopenmp"]  # OpenMP: at::parallel_for runs on torch's threads
    if capability in ("AVX2", "AVX512"):
        flags += ["-march=native", f"-DCPU_CAPABILITY_{capability}", f"-DCPU_CAPABILITY={capability}"]
    source = _SOURCE.read_bytes()
    fingerprint = hashlib.sha256(
        source + torch.__version__.encode() + platform.machine().encode() + " ".join(flags).encode() + _cpu_flags()
    ).hexdigest()[:16]
    name = f"captum_attn_shapley_kernels_{fingerprint}"
    build = cache_dir() / "native" / name
    path = os.environ.get("PATH", "")
    try:
        build.mkdir(parents=True, exist_ok=True)
        os.environ["PATH"] = _ninja_directory() + path
        from torch.utils.cpp_extension import load

        if not (build / f"{name}.so").exists():
            _LOG.warning("Compiling the capture's CPU kernels into %s (once, about 30 seconds).", build)
        sources = [str(_SOURCE)]
        module = load(name, sources, extra_cflags=flags, extra_ldflags=["-fopenmp"], build_directory=str(build))
    except Exception as error:  # no compiler, no ninja, a BLAS without sgemm_, ...
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
        _LOG.warning("The capture's CPU kernels could not be built (%s); using its Python loops.", reason)
        return None, reason
    finally:
        os.environ["PATH"] = path
    return module, ""


def _cpu_flags() -> bytes:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.encode()
    except OSError:
        pass
    return platform.processor().encode()


def _ninja_directory() -> str:
    """The directory of the ``ninja`` of the Python package of that name (a dependency), with a separator."""
    try:
        import ninja
    except ImportError:
        return ""
    directory = str(getattr(ninja, "BIN_DIR", ""))
    return directory + os.pathsep if directory else ""
