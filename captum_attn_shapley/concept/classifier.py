#!/usr/bin/env python3
"""The linear probe that turns token activations into a concept activation vector (CAV)."""

import warnings
from typing import Any, Dict, List, Optional, Union

import numpy as np
import torch
from captum.concept import Classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.utils.data import DataLoader


class TokenLogisticClassifier(Classifier):  # type: ignore[misc]  # captum ships no types: Classifier is Any
    r"""
    A logistic-regression concept classifier for Captum's
    :class:`~captum.concept.Classifier` interface, trained on token
    activations (one row per token).

    Unlike Captum's ``DefaultClassifier`` (SGD, unseeded split) it is deterministic given
    ``random_state``, stratifies its held-out split, and balances the classes, since the
    two sides of a token-level CAV rarely hold the same number of tokens.

    Args:
        C (float): Inverse L2 regularisation strength of
                    :class:`sklearn.linear_model.LogisticRegression`. Default: 0.001. Token
                    activations of distinct concepts are usually linearly separable in many
                    ways; strong regularisation picks the direction close to the difference of
                    the class means instead of an arbitrary separating one, which made T-TCAV
                    agree with the ground truth of the texture task far more often (docs/token_tcav.md).
        max_iter (int): Solver iterations. Default: 1000
        test_split_ratio (float): Fraction of the tokens held out to measure the
                    accuracy reported in the CAV's stats (``"accs"``); 0 trains on all
                    of them and reports the training accuracy. Default: 0.33

    Examples::

        >>> from captum_attn_shapley import TokenTCAV, TokenLogisticClassifier
        >>> tcav = TokenTCAV(vit, layers=[3, 4], classifier=TokenLogisticClassifier(C=0.1))
    """

    def __init__(self, C: float = 0.001, max_iter: int = 1000, test_split_ratio: float = 0.33) -> None:
        if not C > 0:
            raise ValueError(f"C must be positive, got {C}.")
        if not 0 <= test_split_ratio < 1:
            raise ValueError(f"test_split_ratio must be in [0, 1), got {test_split_ratio}.")
        self.C = C
        self.max_iter = max_iter
        self.test_split_ratio = test_split_ratio
        self.lm: Optional[LogisticRegression] = None

    def __repr__(self) -> str:
        return (
            f"TokenLogisticClassifier(C={self.C}, max_iter={self.max_iter}, "
            f"test_split_ratio={self.test_split_ratio})"
        )

    def train_and_eval(
        self,
        dataloader: DataLoader[Any],
        test_split_ratio: Optional[float] = None,
        random_state: int = 0,
        **kwargs: Any,
    ) -> Union[Dict[str, Any], None]:
        r"""
        Fits the probe on ``(activations, labels)`` batches.

        Args:
            dataloader (DataLoader): Yields ``(inputs, labels)``: inputs of shape
                        ``(n, features)``, labels of shape ``(n,)``.
            test_split_ratio (float, optional): Overrides the constructor's value.
            random_state (int): Seed of the held-out split. Default: 0
            **kwargs (Any): Ignored (Captum passes its classifier kwargs through).

        Returns:
            dict: ``{"accs": Tensor}``, the held-out accuracy.
        """
        xs, ys = [], []
        for inputs, labels in dataloader:
            xs.append(inputs.detach().reshape(inputs.shape[0], -1).float().cpu())
            ys.append(labels.detach().reshape(-1).cpu())
        if not xs:
            raise ValueError("The concept classifier received no activations: every concept needs examples.")
        x = torch.cat(xs).numpy()
        y = torch.cat(ys).numpy()
        classes = np.unique(y)
        if classes.size < 2:
            raise ValueError(
                "The concept classifier needs tokens of at least two concepts, got only label(s) "
                f"{classes.tolist()}."
            )
        ratio = self.test_split_ratio if test_split_ratio is None else test_split_ratio
        counts = np.bincount(np.searchsorted(classes, y))
        if ratio > 0 and counts.min() >= 2 and int(len(y) * ratio) >= classes.size:
            x_train, x_test, y_train, y_test = train_test_split(
                x, y, test_size=ratio, random_state=random_state, stratify=y
            )
        else:
            x_train, x_test, y_train, y_test = x, x, y, y
        self.lm = LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight="balanced")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.lm.fit(x_train, y_train)
        acc = float((self.lm.predict(x_test) == y_test).mean())
        return {"accs": torch.tensor(acc)}

    def weights(self) -> Tensor:
        r"""
        The C x F weight matrix in the order of :meth:`classes` (for two classes,
        ``[-w, w]`` as in Captum).

        Returns:
            Tensor: The weights.
        """
        if self.lm is None:
            raise RuntimeError("The classifier has not been trained: call train_and_eval first.")
        coef = torch.as_tensor(self.lm.coef_, dtype=torch.float32)
        if coef.shape[0] == 1:
            return torch.stack([-coef[0], coef[0]])
        return coef

    def classes(self) -> List[int]:
        r"""
        The labels, in the order of the rows of :meth:`weights`.

        Returns:
            list[int]: The labels.
        """
        if self.lm is None:
            raise RuntimeError("The classifier has not been trained: call train_and_eval first.")
        return [int(c) for c in self.lm.classes_]
