"""One attribution method of a comparison: the Captum attribution and how it is called."""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from captum.attr import Attribution

from captum_attn_shapley.metrics import Replacement


@dataclass
class MethodSpec:
    r"""
    One attribution method of a comparison.

    Attributes:
        name (str): The name shown in the results.
        attribution (Attribution): A Captum attribution whose ``attribute(input_ids,
                    target=..., additional_forward_args=(attention_mask,), **kwargs)``
                    returns one score per token (``(batch, seq)``) or per embedding
                    (``(batch, seq, hidden)``).
        kwargs (dict): Further keyword arguments of ``attribute`` (``n_samples``, ...).
        baselines (int, str or None): If set, ``baselines=`` is passed: the input ids with
                    every player replaced by this token (an id, or ``"mask"``, ``"pad"``,
                    ``"unk"``); special tokens and padding keep their ids, so replacing them
                    changes nothing.
        feature_mask (bool): If True, ``feature_mask=`` is passed: each player its own
                    feature (1, 2, ...), every other position feature 0.
        batch_size (int, optional): Examples per ``attribute`` call, instead of the
                    comparison's batch size (e.g. 1 for methods that explain one example at
                    a time anyway).
        max_examples (int, optional): Run this method on the first ``max_examples``
                    examples only (in the order given), for methods too costly for all;
                    the summary's ``n`` says how many it saw.
        description (str): A short description for the results table.

    Examples::

        >>> MethodSpec("LIG", LayerIntegratedGradients(forward, embedding_layer(model)), baselines="pad")
    """

    name: str
    attribution: Attribution
    kwargs: Dict[str, Any] = field(default_factory=dict)
    baselines: Optional[Replacement] = None
    feature_mask: bool = False
    batch_size: Optional[int] = None
    max_examples: Optional[int] = None
    description: str = ""

    def fingerprint(self) -> Dict[str, Any]:
        """What determines this method's numbers (for resuming)."""
        attribution = self.attribution
        settings = {
            k: repr(v)
            for k, v in sorted(vars(attribution).items())
            if isinstance(v, (int, float, str, bool, tuple, list)) or v is None
        }
        return {
            "name": self.name,
            "class": f"{type(attribution).__module__}.{type(attribution).__qualname__}",
            "settings": settings,
            "kwargs": {k: repr(v) for k, v in sorted(self.kwargs.items())},
            "baselines": repr(self.baselines),
            "feature_mask": self.feature_mask,
            "batch_size": self.batch_size,
            "max_examples": self.max_examples,
        }
