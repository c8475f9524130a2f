"""What a dataset job computes: :class:`JobSpec`, a frozen, JSON-serialisable description that every
worker of every engine receives, and its fingerprint (data, model, settings, versions)."""

import dataclasses
import json
import pathlib
from typing import Any, Dict, Optional, Sequence, Tuple

from captum_attn_shapley._utils.fingerprint import settings_digest
from captum_attn_shapley.evaluation.registry import resolve_standard_methods
from captum_attn_shapley.jobs._concept_file import read_concept_file
from captum_attn_shapley.jobs._images import FOLDER, check_image_spec, images_digest
from captum_attn_shapley.jobs._inputs import file_digest, infer_format
from captum_attn_shapley.metrics import DEFAULT_BINS, check_bins

#: The method of a job when none is named.
DEFAULT_METHODS: Tuple[str, ...] = ("Shapley-Grad-Att-CLS",)


#: Batches per shard when ``shard_size`` is not given.
BATCHES_PER_SHARD = 16


def _positive(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class JobSpec:
    r"""
    A dataset job: which examples, which model, which methods, in which shards.

    Everything that determines the job's numbers is here, so that any process (a local worker, a Ray
    task, a torchrun rank) computes a shard from the spec alone. Paths are made absolute, method
    names canonical (:func:`~captum_attn_shapley.evaluation.resolve_standard_methods`), and the
    settings are checked when the spec is made.

    Args:
        input (str): The examples: a Parquet, CSV or JSON-lines file; or a folder of image files
                    (an image job, the files sorted by name).
        model (str): A directory saved with ``save_pretrained`` (with its tokenizer) or a Hugging
                    Face model id.
        methods (sequence of str): Methods of :func:`~captum_attn_shapley.evaluation.standard_method_names`
                    (loose spellings accepted, ``"all"`` for all). Default: ``Shapley-Grad-Att-CLS``
        input_format (str, optional): ``"parquet"``, ``"csv"``, ``"jsonl"`` or ``"folder"``. Default:
                    from the suffix (``"folder"`` for a folder).
        text_column (str): The column of texts. Default: ``"text"``
        label_column (str, optional): A column of integer gold labels, copied to the output.
        metrics (bool): Compute each method's comprehensiveness and sufficiency per example. Default: False
        predictions (bool): Write each example's predicted class and its probability. Default: True
        batch_size (int): Examples per ``attribute`` call. Default: 16
        shard_size (int, optional): Examples per shard (a multiple of ``batch_size``): shard ``i`` holds
                    examples ``[i * shard_size, (i + 1) * shard_size)`` in input order. Default:
                    :data:`BATCHES_PER_SHARD` batches
        max_length (int): Truncation length in tokens. Default: 128
        threads_per_worker (int): ``torch.set_num_threads`` in every worker (part of the
                    fingerprint: other thread counts change low-order bits). Default: 1
        seed (int): ``torch.manual_seed`` before every ``attribute`` call. Default: 0
        baselines (str or int): The token that removes players (metrics, perturbation methods). Default: ``"mask"``
        bins (sequence of float): The metrics' bins in percent. Default: ``DEFAULT_BINS``
        concepts (str, optional): A TokenTCAV job instead: a JSON file of concepts and the sets to test
                    (see :func:`~captum_attn_shapley.jobs.tcav.read_concept_file`); ``methods`` are then ignored.
        layers (sequence of int): TokenTCAV: the blocks probed (indices; negative from the end).
        targets (sequence of int): TokenTCAV: the classes scored. Default: the predicted class.
        repeats (int): TokenTCAV: R, the CAVs per concept. Default: 50
        cav_dir (str, optional): TokenTCAV: the CAV cache, shared by all workers (on a cluster, a shared
                    folder). Default: TokenTCAV's (the user cache).
        image_column (str, optional): An image job instead of texts: the column of image file paths
                    (absolute, or relative to the input file's folder) for a Vision Transformer
                    classifier saved with its image processor. Image jobs take the attention methods
                    (the six exact variants, ``Att``, ``Grad-SAM``) and the sampling estimators, no
                    ``metrics`` and no ``concepts``; ``max_length`` and ``baselines`` do not apply.

    Examples::

        >>> spec = JobSpec("tweets.parquet", "my-model-dir", methods=["grad-att-max-mutual", "att"])
        >>> JobSpec.from_json(spec.to_json()) == spec
        True
    """

    input: str
    model: str
    methods: Tuple[str, ...] = DEFAULT_METHODS
    input_format: Optional[str] = None
    text_column: str = "text"
    label_column: Optional[str] = None
    metrics: bool = False
    predictions: bool = True
    batch_size: int = 16
    shard_size: Optional[int] = None
    max_length: int = 128
    threads_per_worker: int = 1
    seed: int = 0
    baselines: Any = "mask"
    bins: Tuple[float, ...] = tuple(DEFAULT_BINS)
    concepts: Optional[str] = None
    layers: Tuple[int, ...] = ()
    targets: Tuple[int, ...] = ()
    repeats: int = 50
    cav_dir: Optional[str] = None
    image_column: Optional[str] = None

    @property
    def kind(self) -> str:
        """``"tcav"`` for a TokenTCAV job (``concepts`` given), else ``"attributions"``."""
        return "tcav" if self.concepts is not None else "attributions"

    @property
    def images(self) -> bool:
        """Whether the job reads images (``image_column`` given, or a folder of images)."""
        return self.image_column is not None or self.input_format == FOLDER

    def __post_init__(self) -> None:
        path = pathlib.Path(str(self.input)).expanduser()
        if path.is_dir() and self.input_format in (None, FOLDER):
            object.__setattr__(self, "input_format", FOLDER)  # a folder of images
        elif not path.is_file():
            raise ValueError(
                f"input {str(self.input)!r} is not a file: give the path of a Parquet, CSV or JSONL file "
                "(or a folder of images)."
            )
        object.__setattr__(self, "input", str(path.resolve()))
        if self.input_format != FOLDER:
            object.__setattr__(self, "input_format", infer_format(self.input, self.input_format))
        model_path = pathlib.Path(str(self.model)).expanduser()
        if model_path.is_dir():
            object.__setattr__(self, "model", str(model_path.resolve()))
        names = [self.methods] if isinstance(self.methods, str) else list(self.methods)
        if self.concepts is not None:
            self._check_tcav()
            names = []  # a TokenTCAV job runs no attribution method
        elif not names:
            raise ValueError("methods is empty: name at least one method, e.g. ['Shapley-Grad-Att-Max-Mutual'].")
        object.__setattr__(self, "methods", tuple(resolve_standard_methods(names) or ()) if names else ())
        if self.images:
            check_image_spec(self)
        _positive(self.batch_size, "batch_size")
        if self.shard_size is None:
            object.__setattr__(self, "shard_size", BATCHES_PER_SHARD * self.batch_size)
        for name in ("shard_size", "max_length", "threads_per_worker"):
            _positive(getattr(self, name), name)
        shard_size = int(self.shard_size or 0)
        if shard_size % self.batch_size:
            suggestion = self.batch_size * max(1, shard_size // self.batch_size)
            raise ValueError(
                f"shard_size {self.shard_size} is not a multiple of batch_size {self.batch_size}: a shard holds "
                f"whole batches; give e.g. shard_size={suggestion}."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer, 0 or more, got {self.seed!r}.")
        object.__setattr__(self, "bins", tuple(float(b) for b in check_bins(tuple(self.bins))))

    def _check_tcav(self) -> None:
        path = pathlib.Path(str(self.concepts)).expanduser()
        read_concept_file(str(path))
        object.__setattr__(self, "concepts", str(path.resolve()))
        layers = [self.layers] if isinstance(self.layers, int) else list(self.layers)
        if not layers or not all(isinstance(v, int) and not isinstance(v, bool) for v in layers):
            raise ValueError(
                f"layers must list block indices (e.g. [1]) for a TokenTCAV job, got {self.layers!r}."
            )
        targets = [self.targets] if isinstance(self.targets, int) else list(self.targets)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in targets):
            raise ValueError(
                f"targets must be class indices, 0 or more (none: the predicted class), got {targets}."
            )
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 2:
            raise ValueError(f"repeats must be an integer, 2 or more (the t-test needs 2), got {self.repeats!r}.")
        object.__setattr__(self, "layers", tuple(layers))
        object.__setattr__(self, "targets", tuple(targets))
        if self.cav_dir is not None:
            object.__setattr__(self, "cav_dir", str(pathlib.Path(self.cav_dir).expanduser().resolve()))

    def to_json(self) -> str:
        r"""
        The spec as JSON (what :meth:`from_json` reads back).

        Returns:
            str: A JSON object of the fields.
        """
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "JobSpec":
        r"""
        A spec from :meth:`to_json`'s JSON.

        Args:
            text (str): The JSON object.

        Returns:
            JobSpec: The spec.
        """
        fields = json.loads(text)
        for name in ("methods", "bins", "layers", "targets"):
            fields[name] = tuple(fields[name])
        return cls(**fields)

    def fingerprint_parts(self) -> Dict[str, str]:
        r"""
        Digests of what determines the job's numbers, by part: ``data`` (the input file's bytes; for
        images also every image's bytes), ``model`` (configuration and weights, and the image
        processor's settings; loads the model), ``settings`` (every field but the paths) and
        ``version`` (this package, torch, transformers, captum).

        Returns:
            dict[str, str]: The digests.
        """
        import captum
        import torch
        import transformers

        import captum_attn_shapley
        from captum_attn_shapley.jobs._model import model_digest

        paths = ("input", "model", "concepts", "cav_dir")
        settings = {k: v for k, v in dataclasses.asdict(self).items() if k not in paths}
        if self.image_column is None:
            settings.pop("image_column")  # text jobs keep the fingerprints they had before image jobs
        versions = [
            captum_attn_shapley.__version__,
            torch.__version__,
            transformers.__version__,
            captum.__version__,
        ]
        if self.images:
            data = images_digest(self)
        else:
            data = settings_digest([file_digest(p) for p in (self.input, self.concepts) if p is not None])
        return {
            "data": data,
            "model": model_digest(self.model, self.images),
            "settings": settings_digest(settings),
            "version": settings_digest(versions),
        }

    def fingerprint(self) -> str:
        r"""
        One digest of :meth:`fingerprint_parts`.

        Returns:
            str: 16 hex digits.
        """
        return settings_digest(self.fingerprint_parts())


def make_spec(input: str, model: str, methods: Optional[Sequence[str]] = None, **options: Any) -> JobSpec:
    r"""
    A :class:`JobSpec`, its unknown options refused with the list of known ones.

    Args:
        input (str): The input file.
        model (str): The model directory or hub id.
        methods (sequence of str, optional): The methods (default :data:`DEFAULT_METHODS`).
        **options: Other fields of :class:`JobSpec`.

    Returns:
        JobSpec: The spec.
    """
    known = [f.name for f in dataclasses.fields(JobSpec) if f.name not in ("input", "model", "methods")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"Unknown job option(s) {unknown}; the options are: {', '.join(known)}.")
    return JobSpec(input, model, tuple(methods) if methods is not None else DEFAULT_METHODS, **options)
