#!/usr/bin/env python3
"""TokenTCAV: attention-weighted, token-level concept sensitivity (T-TCAV, SPEC §5).

A subclass of Captum's :class:`captum.concept.TCAV` that keeps Captum's ``Concept``,
``CAV`` storage and ``Classifier`` interface but works on tokens:

1. every non-padding token of every concept example is one activation vector of the
   layer's residual stream (a transformer block's output);
2. a relative CAV separates a concept's tokens from those of an equally sized random draw
   of examples of the other concepts of its set, repeated R times (default 50);
3. for each target example, one batched forward and backward pass gives the gradient of
   the target logit w.r.t. every selected layer's token states, and the attention from the
   classification token in the same layer;
4. ``D_t = a_t * (g_t . v)``, ``s(x) = sum_t D_t`` and T-TCAV = the fraction of examples
   with ``s(x) > 0``, with a t-test of the R scores against 0.5 and, optionally, Captum's
   test against random concepts and a multiple-testing correction.
"""

import inspect
import json
import os
import warnings
import zlib
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from captum._utils.typing import TensorOrTupleOfTensorsGeneric
from captum.concept import TCAV, Concept
from captum.concept._core.cav import CAV
from captum.concept._utils.classifier import Classifier
from captum.concept._utils.common import concepts_to_str
from captum.log import log_usage
from torch import Tensor
from torch.nn import Module
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from captum_attn_shapley._utils.fingerprint import model_fingerprint, settings_digest
from captum_attn_shapley._utils.forward import forward_args_tuple
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley.capture.attention import AttentionCapture, CapturedAttention, ModuleSpec, OutputSelector
from captum_attn_shapley.capture.players import (
    default_player_mask,
    infer_layout,
    model_special_token_ids,
    real_token_mask,
    unique_ids,
)
from captum_attn_shapley.concept.classifier import TokenLogisticClassifier
from captum_attn_shapley.concept.scores import TokenTCAVScores
from captum_attn_shapley.concept.stats import CORRECTIONS, correct_pvalues, random_concept_test, ttest_against_half

LayerSpec = Union[str, int]
#: Bumped whenever the way CAVs are trained changes, so that older cached CAVs are not reused.
CAV_FORMAT = 1
_MODEL_RECORD = "model.json"


def _block_name(attention_name: str) -> Optional[str]:
    """``vit.layers.4.attention.attention`` -> ``vit.layers.4``."""
    parts = attention_name.split(".")
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return None


def _as_list(value: Any) -> List[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


class TokenTCAV(TCAV):
    r"""
    Token-level TCAV weighted by the classification token's attention (T-TCAV), for
    Vision Transformers (patch tokens) and BERT-like text models (word-piece tokens).

    Args:
        model (Module): The transformer classifier (Hugging Face or any model whose
                    attention modules can be named).
        layers (str, int or list): Transformer blocks whose output token states are
                    probed: module names as in Captum (e.g. ``"vit.layers.4"`` or ``"bert.encoder.layer.4"``) or
                    block indices (``4``; negative from the end). Each block must contain
                    exactly one attention module, whose classification-token row weights
                    the tokens.
        model_id (str, optional): Folder of this model's CAVs under ``save_path``.
                    Default: the model's class name and a fingerprint of its weights, so
                    CAVs of one model are never picked up for another. A given
                    ``model_id`` that was used for different weights raises an error.
        classifier (Classifier, optional): Captum ``Classifier`` used for each CAV.
                    Default: :class:`TokenLogisticClassifier` (logistic regression).
        save_path (str, optional): Root of the CAV cache. Default:
                    ``<cache_dir>/cav`` (see :func:`captum_attn_shapley.demos.model_cache.cache_dir`).
        repeats (int): R, the number of CAVs per concept, each against a different
                    random draw of the set's other concepts. At least 2 (t-test). Default: 50
        attention_weighting (bool): Weight token derivatives by the classification
                    token's attention (T-TCAV). If False, every token counts equally, which
                    is Captum's TCAV on the token states with the CAV shared by all tokens.
                    Default: True
        batch_size (int): Target examples per forward/backward pass. Default: 32
        seed (int): Seed of the negative draws and the probes' held-out splits. Default: 0
        forward_func (Callable, optional): A Captum-style function that wraps ``model``
                    and returns logits. Default: ``model``.
        attention_modules, attention_output_index, switch_to_eager: As for
                    :class:`~captum_attn_shapley.AttentionCapture` (models that do not
                    declare their attention; eager attention switching).
        show_progress (bool): Show tqdm progress bars. Default: False
        special_token_ids (sequence of int, optional): Token ids left out of text heatmaps
                    (position 0 always is). Default: the model's (config and tokenizer).
        **classifier_kwargs: Passed to ``classifier.train_and_eval`` (as in Captum).

    Examples::

        >>> from captum_attn_shapley import TokenTCAV, image_concept
        >>> striped = image_concept(0, "striped", striped_pixels)
        >>> dotted = image_concept(1, "dotted", dotted_pixels)
        >>> zigzag = image_concept(2, "zigzag", zigzag_pixels)
        >>> tcav = TokenTCAV(vit, layers=[2, 3])
        >>> scores = tcav.interpret(zebra_pixels, [[striped, dotted, zigzag]], target=0)
        >>> scores["0-1-2"]["vit.layers.2"]["sign_count"]   # one T-TCAV per concept
        >>> print(scores.to_markdown())
    """

    def __init__(
        self,
        model: Module,
        layers: Union[LayerSpec, Sequence[LayerSpec]],
        model_id: Optional[str] = None,
        classifier: Optional[Classifier] = None,
        save_path: Optional[str] = None,
        repeats: int = 50,
        attention_weighting: bool = True,
        batch_size: int = 32,
        seed: int = 0,
        forward_func: Optional[Callable] = None,
        attention_modules: Optional[Sequence[ModuleSpec]] = None,
        attention_output_index: OutputSelector = 1,
        switch_to_eager: bool = True,
        show_progress: bool = False,
        special_token_ids: Optional[Sequence[int]] = None,
        **classifier_kwargs: Any,
    ) -> None:
        if not isinstance(repeats, int) or repeats < 2:
            raise ValueError(
                f"repeats must be an int >= 2 (the t-test against 0.5 needs at least two CAVs per concept), "
                f"got {repeats!r}. The paper uses 50."
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
        self.capturer = AttentionCapture(
            forward_func if forward_func is not None else model,
            model=model,
            attention_modules=attention_modules,
            attention_output_index=attention_output_index,
            switch_to_eager=switch_to_eager,
        )
        names, blocks, attention_index = self._resolve_layers(model, layers)
        self.blocks: Dict[str, Module] = blocks
        self.attention_index: Dict[str, int] = attention_index
        self.fingerprint = model_fingerprint(model)
        if model_id is None:
            model_id = f"{type(model).__name__}-{self.fingerprint}"
        if save_path is None:
            from captum_attn_shapley._utils.cache import cache_dir

            save_path = str(cache_dir() / "cav")
        if classifier is None:
            classifier = TokenLogisticClassifier()
        super().__init__(
            model, names, model_id=model_id, classifier=classifier, save_path=save_path, **classifier_kwargs
        )
        self._check_model_record()
        self.repeats = repeats
        self.attention_weighting = attention_weighting
        self.batch_size = batch_size
        self.seed = seed
        self.show_progress = show_progress
        self._special_ids = (
            unique_ids(special_token_ids)
            if special_token_ids is not None
            else model_special_token_ids(self.capturer.model)
        )
        self.random_cavs: Dict[str, Dict[str, CAV]] = {}
        self._activations: Dict[Tuple[Any, str], Tuple[Tensor, Tensor]] = {}

    # ------------------------------------------------------------------ layers and cache

    def _resolve_layers(
        self, model: Module, layers: Union[LayerSpec, Sequence[LayerSpec]]
    ) -> Tuple[List[str], Dict[str, Module], Dict[str, int]]:
        specs = _as_list(layers)
        if len(specs) == 0:
            raise ValueError("`layers` is empty: name at least one transformer block.")
        attention_names = [name for name, _, _ in self.capturer.modules]
        block_of = [_block_name(name) for name in attention_names]
        known_blocks = [b for b in block_of if b is not None]
        modules = dict(model.named_modules())
        names: List[str] = []
        blocks: Dict[str, Module] = {}
        attention_index: Dict[str, int] = {}
        n = len(attention_names)
        for spec in specs:
            if isinstance(spec, bool) or not isinstance(spec, (int, str)):
                raise TypeError(f"Layers are block names or indices, got {spec!r}.")
            if isinstance(spec, int):
                if not -n <= spec < n:
                    raise ValueError(
                        f"Layer {spec} does not exist: {type(model).__name__} has {n} transformer blocks "
                        f"(indices 0..{n - 1}, or negative from the end)."
                    )
                name = block_of[spec % n]
                if name is None:
                    raise ValueError(
                        f"Cannot tell which block holds attention module {attention_names[spec % n]!r}: "
                        "name the block explicitly (a module name)."
                    )
            else:
                name = spec
                if name not in modules:
                    raise ValueError(
                        f"No module named {name!r} in {type(model).__name__}. Name a transformer block, "
                        f"e.g. one of {known_blocks[:3]}{' ...' if len(known_blocks) > 3 else ''}, or give "
                        "block indices."
                    )
            inside = [i for i, a in enumerate(attention_names) if a == name or a.startswith(name + ".")]
            if len(inside) != 1:
                what = "no attention module" if not inside else f"{len(inside)} attention modules"
                raise ValueError(
                    f"Layer {name!r} contains {what}; TokenTCAV weights each block's token states by that "
                    f"block's own attention, so name a single transformer block, e.g. {known_blocks[:2]}."
                )
            if name not in blocks:
                names.append(name)
                blocks[name] = modules[name]
                attention_index[name] = inside[0]
        return names, blocks, attention_index

    def _check_model_record(self) -> None:
        path = os.path.join(self.save_path, self.model_id, _MODEL_RECORD)
        record = {"fingerprint": self.fingerprint, "model": type(self.model).__name__}
        if os.path.isfile(path):
            with open(path) as f:
                stored = json.load(f)
            if stored.get("fingerprint") != self.fingerprint:
                raise ValueError(
                    f"The CAV cache {os.path.join(self.save_path, self.model_id)!r} belongs to another model "
                    f"({stored.get('model')}, weights fingerprint {stored.get('fingerprint')}; this "
                    f"{record['model']} has {self.fingerprint}). Its CAVs must not be reused: leave model_id "
                    "unset (it then defaults to the weights' fingerprint) or choose a new model_id or save_path."
                )
            return
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)

    def _cav_folder(self, repeats: int) -> str:
        """The model_id-relative folder of CAVs trained with these settings."""
        settings = {
            "format": CAV_FORMAT,
            "repeats": repeats,
            "seed": self.seed,
            "classifier": repr(self.classifier),
            "classifier_kwargs": self.classifier_kwargs,
        }
        return os.path.join(self.model_id, f"token-cavs-{settings_digest(settings)}")

    # ------------------------------------------------------------------ activations

    def generate_activation(self, layers: Union[str, List[str]], concept: Concept) -> None:
        r"""
        Computes the token activations of one concept's examples at the given layers
        (one vector per non-padding token), kept in memory for CAV training.

        Args:
            layers (str or list[str]): Layer names (from ``self.layers``).
            concept (Concept): The concept; its ``data_iter`` yields model inputs: a tensor
                        (``input_ids`` or ``pixel_values``) or a tuple passed as
                        positional arguments (e.g. ``(input_ids, attention_mask)``).
        """
        layers = [layers] if isinstance(layers, str) else list(layers)
        unknown = [layer for layer in layers if layer not in self.blocks]
        if unknown:
            raise ValueError(f"Layers {unknown} were not given to this TokenTCAV (it has {self.layers}).")
        if concept.data_iter is None:
            raise ValueError(f"Concept {concept.name!r} (id {concept.id}) has no data_iter: give it examples.")
        chunks: Dict[str, List[Tensor]] = {layer: [] for layer in layers}
        counts: List[int] = []
        modules = [self.blocks[layer] for layer in layers]
        for batch in concept.data_iter:
            inputs = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
            if not isinstance(inputs[0], Tensor) or inputs[0].dim() == 0:
                raise TypeError(
                    f"Concept {concept.name!r}: data_iter must yield tensors or tuples of tensors (model inputs), "
                    f"got {type(inputs[0]).__name__}."
                )
            if inputs[0].shape[0] == 0:
                continue
            captured = self.capturer.capture(
                inputs, layers=[self.attention_index[layers[0]]], with_gradients=False, state_modules=modules
            )
            assert captured.states is not None
            states = captured.states
            valid = real_token_mask(captured, states[0].shape[0], states[0].shape[1], states[0].device)
            for layer, state in zip(layers, states):
                chunks[layer].append(state[valid].float().cpu())
            counts.extend(int(c) for c in valid.sum(dim=1))
        if not counts:
            raise ValueError(
                f"Concept {concept.name!r} (id {concept.id}) has no examples: its data_iter yielded nothing."
            )
        offsets = torch.zeros(len(counts) + 1, dtype=torch.long)
        offsets[1:] = torch.cumsum(torch.tensor(counts), dim=0)
        for layer in layers:
            self._activations[(concept.id, layer)] = (torch.cat(chunks[layer]), offsets)

    # ------------------------------------------------------------------ CAVs

    def _check_sets(self, experimental_sets: Sequence[Sequence[Concept]]) -> None:
        if not isinstance(experimental_sets, (list, tuple)) or len(experimental_sets) == 0:
            raise ValueError("experimental_sets is empty: give a list of concept sets, e.g. [[striped, dotted]].")
        for concepts in experimental_sets:
            if not isinstance(concepts, (list, tuple)) or len(concepts) < 2:
                raise ValueError(
                    f"Each experimental set needs at least two concepts (relative CAVs separate a concept from "
                    f"the others of its set), got {concepts!r}."
                )
            for c in concepts:
                if not isinstance(c, Concept):
                    raise TypeError(
                        f"Experimental sets hold captum.concept.Concept objects, got {type(c).__name__}."
                    )
            ids = [c.id for c in concepts]
            if len(set(ids)) != len(ids):
                raise ValueError(f"An experimental set repeats a concept id: {ids}.")

    def _register(self, concepts: Sequence[Concept]) -> None:
        for c in concepts:
            for known in self.concepts:
                if known.id == c.id and known is not c:
                    raise ValueError(
                        f"Two different Concept objects share id {c.id} ({known.name!r} and {c.name!r}); "
                        "CAVs are stored by concept id, so reuse one instance per concept."
                    )
            self.concepts.add(c)

    def _load_cav(self, concepts: List[Concept], layer: str, repeats: int) -> Optional[CAV]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # captum's loader touches numpy.core
            cav = CAV.load(self.save_path, self._cav_folder(repeats), concepts, layer)
        if cav is None:
            return None
        stats = cav.stats or {}
        if stats.get("model_fingerprint") != self.fingerprint:
            raise ValueError(
                f"Cached CAVs for concepts {concepts_to_str(concepts)} at {layer!r} were trained on another model "
                f"(fingerprint {stats.get('model_fingerprint')}, this one {self.fingerprint}); they are not "
                "reused. "
                "Use a different model_id or save_path, or force_train=True to overwrite them."
            )
        return cav

    def _cavs_for(
        self,
        experimental_sets: Sequence[Sequence[Concept]],
        repeats: int,
        store: Dict[str, Dict[str, CAV]],
        force_train: bool,
    ) -> None:
        for concepts in experimental_sets:
            concepts = list(concepts)
            key = concepts_to_str(concepts)
            missing = []
            for layer in self.layers:
                cav = None if force_train else self._load_cav(concepts, layer, repeats)
                if cav is None:
                    missing.append(layer)
                else:
                    store.setdefault(key, {})[layer] = cav
            if not missing:
                continue
            for concept in concepts:
                absent = [layer for layer in missing if (concept.id, layer) not in self._activations]
                if absent:
                    self.generate_activation(absent, concept)
            CAV.create_cav_dir_if_missing(self.save_path, self._cav_folder(repeats))
            for layer in missing:
                cav = self._train_relative_cavs(concepts, layer, repeats)
                cav.save()
                store.setdefault(key, {})[layer] = cav

    def _train_relative_cavs(self, concepts: List[Concept], layer: str, repeats: int) -> CAV:
        key = concepts_to_str(concepts)
        acts = [self._activations[(c.id, layer)] for c in concepts]
        features = acts[0][0].shape[1]
        k = len(concepts)
        weights = torch.zeros(k, repeats, features)
        accs = torch.full((k, repeats), float("nan"))
        classifier = self.classifier
        assert classifier is not None
        kwargs = dict(self.classifier_kwargs)
        takes_seed = "random_state" in inspect.signature(classifier.train_and_eval).parameters
        progress = tqdm(
            total=k * repeats, desc=f"CAVs {key} @ {layer}", disable=not self.show_progress, leave=False
        )

        def tokens_of(j: int, e: int) -> Tensor:
            x, offsets = acts[j]
            return x[offsets[e] : offsets[e + 1]]

        for i, concept in enumerate(concepts):
            pos_x, pos_off = acts[i]
            n_pos = len(pos_off) - 1
            others = [(j, e) for j in range(k) if j != i for e in range(len(acts[j][1]) - 1)]
            for r in range(repeats):
                rng = np.random.default_rng([self.seed, zlib.crc32(key.encode()), i, r])
                picks = rng.choice(len(others), size=min(n_pos, len(others)), replace=False)
                neg_x = torch.cat([tokens_of(*others[p]) for p in np.sort(picks)])
                x = torch.cat([pos_x, neg_x])
                y = torch.cat(
                    [torch.ones(len(pos_x), dtype=torch.long), torch.zeros(len(neg_x), dtype=torch.long)]
                )
                if takes_seed:
                    kwargs["random_state"] = int(rng.integers(2**31 - 1))
                loader = DataLoader(TensorDataset(x, y), batch_size=len(x))
                stats = classifier.train_and_eval(loader, **kwargs) or {}
                classes = [int(c) for c in np.asarray(classifier.classes()).ravel().tolist()]
                if 1 not in classes:
                    raise RuntimeError(f"The classifier's classes {classes} do not include the concept label 1.")
                row = torch.as_tensor(classifier.weights())[classes.index(1)].detach().float().cpu().reshape(-1)
                norm = row.norm()
                if not torch.isfinite(norm) or norm == 0:
                    raise RuntimeError(
                        f"The CAV of concept {concept.name!r} at {layer!r} is zero or not finite: its tokens "
                        "cannot be separated from the other concepts' (check the concept examples)."
                    )
                weights[i, r] = row / norm
                acc = stats.get("accs")
                if acc is not None:
                    accs[i, r] = float(acc)
                progress.update(1)
        progress.close()
        stats_dict = {
            "weights": weights,
            "classes": [c.id for c in concepts],
            "accs": accs,
            "model_fingerprint": self.fingerprint,
            "repeats": repeats,
            "num_tokens": [int(a[0].shape[0]) for a in acts],
            "num_examples": [int(len(a[1]) - 1) for a in acts],
        }
        return CAV(concepts, layer, stats_dict, self.save_path, self._cav_folder(repeats))

    def compute_cavs(
        self, experimental_sets: List[List[Concept]], force_train: bool = False, processes: Optional[int] = None
    ) -> Dict[str, Dict[str, CAV]]:
        r"""
        Loads or trains the relative token CAVs of every experimental set at every layer.

        For each concept ``C`` of a set and each of the R repeats, the classifier
        separates ``C``'s token activations from those of a random draw (as many examples
        as ``C`` has) of the set's other concepts; the CAV is the unit-normalised weight
        vector of ``C``. A CAV's ``stats["weights"]`` has shape ``(k, R, hidden)``.
        CAVs are saved with Captum's :class:`~captum.concept._core.cav.CAV` under
        ``save_path/model_id/token-cavs-<settings digest>/`` and reused when present.

        Args:
            experimental_sets (list[list[Concept]]): The concept sets.
            force_train (bool): Train again even if saved CAVs exist. Default: False
            processes (int, optional): Accepted for Captum compatibility; CAVs are trained
                        in this process.

        Returns:
            dict: ``self.cavs``, by concepts key and layer.
        """
        self._check_sets(experimental_sets)
        for concepts in experimental_sets:
            self._register(concepts)
        self._cavs_for(experimental_sets, self.repeats, self.cavs, force_train)
        return self.cavs

    # ------------------------------------------------------------------ scoring

    def _batches(
        self, inputs: Any, target: TargetLike, additional_forward_args: Any
    ) -> List[Tuple[Tuple[Tensor, ...], TargetLike, Tuple[Any, ...]]]:
        inputs_tuple = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
        if len(inputs_tuple) == 0 or not isinstance(inputs_tuple[0], Tensor) or inputs_tuple[0].dim() == 0:
            raise ValueError("inputs must be a tensor (or tuple of tensors) with the examples along dim 0.")
        n = inputs_tuple[0].shape[0]
        if n == 0:
            raise ValueError("inputs hold no examples: give at least one target example.")
        extra = forward_args_tuple(additional_forward_args)
        for t in inputs_tuple[1:] + extra:
            if isinstance(t, Tensor) and t.dim() > 0 and t.shape[0] != n:
                raise ValueError(
                    f"inputs have {n} examples but another input or additional_forward_args tensor has "
                    f"{t.shape[0]} rows: they must match (one row per example)."
                )
        per_example_target = isinstance(target, (list, tuple)) or (
            isinstance(target, Tensor) and target.dim() == 1 and target.numel() > 1
        )
        if per_example_target and len(target) != n:  # type: ignore[arg-type]
            raise ValueError(f"`target` has {len(target)} entries for {n} examples.")  # type: ignore[arg-type]

        def cut(t: Any, start: int, stop: int) -> Any:
            return t[start:stop] if isinstance(t, Tensor) and t.dim() > 0 and t.shape[0] == n else t

        batches = []
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            tgt = target[start:stop] if per_example_target else target  # type: ignore[index]
            batches.append(
                (tuple(cut(t, start, stop) for t in inputs_tuple), tgt, tuple(cut(t, start, stop) for t in extra))
            )
        return batches

    def _token_terms(self, captured: CapturedAttention) -> Dict[str, Tuple[Tensor, Tensor, Tensor]]:
        """Per layer: token gradients ``g`` (B, T, F), weights ``w`` (B, T) and the valid mask."""
        assert captured.state_gradients is not None
        out = {}
        position = {idx: i for i, idx in enumerate(captured.layer_indices)}
        for layer, grad in zip(self.layers, captured.state_gradients):
            batch, tokens = grad.shape[0], grad.shape[1]
            valid = real_token_mask(captured, batch, tokens, grad.device)
            attention = captured.attentions[position[self.attention_index[layer]]]
            if attention.shape[-1] != tokens:
                raise RuntimeError(
                    f"Layer {layer!r} has {tokens} token states but its attention covers {attention.shape[-1]} "
                    "tokens; name blocks whose output is the token sequence the attention sees."
                )
            cls_attention = attention[:, :, 0, :].float().mean(dim=1)
            weight = cls_attention if self.attention_weighting else torch.ones_like(cls_attention)
            out[layer] = (grad.float(), weight * valid, valid)
        return out

    def _capture(
        self, inputs: Tuple[Tensor, ...], target: TargetLike, extra: Tuple[Any, ...]
    ) -> CapturedAttention:
        return self.capturer.capture(
            inputs,
            target=target,
            additional_forward_args=extra,
            layers=sorted(set(self.attention_index[layer] for layer in self.layers)),
            with_gradients=False,
            state_modules=[self.blocks[layer] for layer in self.layers],
            state_gradients=True,
        )

    def example_scores(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        cavs: Dict[str, Tensor],
        target: TargetLike = None,
        additional_forward_args: Any = None,
    ) -> Tuple[Dict[str, Tensor], Tensor]:
        r"""
        The example scores ``s(x) = sum_t a_t (g_t . v)`` for any CAVs (rows of unit
        vectors per layer), from batched forward/backward passes (one per batch for all
        layers).

        Args:
            inputs (Tensor or tuple[Tensor, ...]): The target examples.
            cavs (dict[str, Tensor]): Layer name -> CAVs of shape ``(n_cavs, hidden)``.
            target (int, list, Tensor, optional): Captum-style target; default: the
                        predicted class.
            additional_forward_args (Any, optional): E.g. the attention mask.

        Returns:
            tuple: ``({layer: scores of shape (n_examples, n_cavs)}, targets (n_examples,))``.
        """
        scores: Dict[str, List[Tensor]] = {layer: [] for layer in cavs}
        targets = []
        batches = self._batches(inputs, target, additional_forward_args)
        progress = tqdm(batches, desc="T-TCAV scores", disable=not self.show_progress, leave=False)
        for batch_inputs, batch_target, extra in progress:
            captured = self._capture(batch_inputs, batch_target, extra)
            terms = self._token_terms(captured)
            for layer, vectors in cavs.items():
                grad, weight, _ = terms[layer]
                pooled = torch.einsum("bt,btf->bf", weight, grad)
                scores[layer].append(pooled @ vectors.to(pooled.device, pooled.dtype).T)
            targets.append(captured.target)
        return {layer: torch.cat(parts).cpu() for layer, parts in scores.items()}, torch.cat(targets).cpu()

    @log_usage(part_of_slo=True)
    def interpret(  # type: ignore[override]
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        experimental_sets: List[List[Concept]],
        target: TargetLike = None,
        additional_forward_args: Optional[object] = None,
        processes: Optional[int] = None,
        random_concepts: Optional[Sequence[Concept]] = None,
        correction: Optional[str] = None,
        alpha: float = 0.05,
        force_train: bool = False,
        **kwargs: Any,
    ) -> TokenTCAVScores:
        r"""
        T-TCAV scores and their significance for every concept of every experimental set
        at every layer.

        Args:
            inputs (Tensor or tuple[Tensor, ...]): Target-class examples (``pixel_values``
                        or ``input_ids``), batched internally by ``batch_size``.
            experimental_sets (list[list[Concept]]): Concept sets; each concept gets
                        relative CAVs against the others of its set.
            target (int, list, Tensor, optional): The class whose logit is
                        differentiated, as in Captum; default: the predicted class.
            additional_forward_args (Any, optional): Extra model arguments, e.g. the
                        attention mask.
            processes (int, optional): Accepted for Captum compatibility (ignored).
            random_concepts (sequence of Concept, optional): At least 3 random concepts for
                        Captum's original test: each concept's T-TCAV against random
                        partners ``r_1..r_m`` versus ``r_0``'s against the same partners,
                        a two-sided two-sample t-test (one CAV per pair).
            correction (str, optional): Multiple-testing correction over all concepts and
                        layers of this call: ``"bonferroni"``, ``"holm"``, ``"bh"`` or ``"by"``.
            alpha (float): Significance level of the table's ``significant`` column.
                        Default: 0.05
            force_train (bool): Retrain CAVs even if cached. Default: False

        Returns:
            TokenTCAVScores: ``scores[concepts_key][layer][metric]`` as in Captum (see
            :class:`TokenTCAVScores`), with ``.rows()`` / ``.to_markdown()``.
        """
        if kwargs:
            raise TypeError(
                f"Unexpected arguments {sorted(kwargs)}: TokenTCAV differentiates the target logit directly and "
                "takes no layer-attribution arguments."
            )
        if correction is not None and correction not in CORRECTIONS:
            raise ValueError(f"Unknown correction {correction!r}: use None or one of {CORRECTIONS}.")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}.")
        self.compute_cavs(experimental_sets, force_train=force_train)
        randoms = self._random_sets(experimental_sets, random_concepts, force_train)

        stacked: Dict[str, List[Tensor]] = {layer: [] for layer in self.layers}
        for concepts in experimental_sets:
            key = concepts_to_str(concepts)
            for layer in self.layers:
                w = self.cavs[key][layer].stats["weights"]  # type: ignore[index]
                stacked[layer].append(w.reshape(-1, w.shape[-1]))
        for pair_key in randoms:
            for layer in self.layers:
                stacked[layer].append(self.random_cavs[pair_key][layer].stats["weights"][0].reshape(1, -1))
        matrices = {layer: torch.cat(parts) for layer, parts in stacked.items()}
        scores, targets = self.example_scores(inputs, matrices, target, additional_forward_args)

        result = TokenTCAVScores(alpha=alpha, correction=correction, num_examples=int(targets.shape[0]))
        column = 0
        for concepts in experimental_sets:
            key = concepts_to_str(concepts)
            result.concept_names[key] = [c.name for c in concepts]
            result.concept_ids[key] = [c.id for c in concepts]
            result[key] = {}
            k = len(concepts)
            repeats = self.repeats
            for layer in self.layers:
                stats = self.cavs[key][layer].stats
                s = scores[layer][:, column : column + k * repeats].reshape(-1, k, repeats)
                sign = (s > 0).float().mean(dim=0)
                magnitude = s.mean(dim=0)
                result[key][layer] = {
                    "sign_count": sign.mean(dim=1),
                    "magnitude": magnitude.mean(dim=1),
                    "sign_count_repeats": sign,
                    "magnitude_repeats": magnitude,
                    "cav_accuracy": torch.nanmean(stats["accs"].float(), dim=1),  # type: ignore[index]
                    "p_value": torch.as_tensor(ttest_against_half(sign.numpy()), dtype=torch.float64),
                }
            column += k * repeats
        if randoms:
            self._random_test(result, experimental_sets, random_concepts or [], randoms, scores, column)
        self._correct(result, correction)
        return result

    # ------------------------------------------------------------------ random-concept test

    def _random_sets(
        self,
        experimental_sets: Sequence[Sequence[Concept]],
        random_concepts: Optional[Sequence[Concept]],
        force_train: bool,
    ) -> List[str]:
        if random_concepts is None:
            return []
        random_concepts = list(random_concepts)
        if len(random_concepts) < 3:
            raise ValueError(
                f"Captum's random-concept test needs at least 3 random concepts (a reference r_0 and two or more "
                f"partners, so that each side of the t-test has 2 scores), got {len(random_concepts)}."
            )
        for c in random_concepts:
            if not isinstance(c, Concept):
                raise TypeError(f"random_concepts holds captum.concept.Concept objects, got {type(c).__name__}.")
        set_ids = {c.id for concepts in experimental_sets for c in concepts}
        clash = [c.id for c in random_concepts if c.id in set_ids]
        if clash:
            raise ValueError(f"Random concepts reuse ids {clash} of the experimental sets' concepts.")
        self._register(random_concepts)
        reference, partners = random_concepts[0], random_concepts[1:]
        tested = {c.id: c for concepts in experimental_sets for c in concepts}
        pairs = [[c, p] for c in list(tested.values()) + [reference] for p in partners]
        self._cavs_for(pairs, 1, self.random_cavs, force_train)
        return [concepts_to_str(pair) for pair in pairs]

    def _random_test(
        self,
        result: TokenTCAVScores,
        experimental_sets: Sequence[Sequence[Concept]],
        random_concepts: Sequence[Concept],
        pair_keys: List[str],
        scores: Dict[str, Tensor],
        first_column: int,
    ) -> None:
        columns = {key: first_column + i for i, key in enumerate(pair_keys)}
        reference, partners = random_concepts[0], list(random_concepts[1:])
        for layer in self.layers:

            def t_tcav(concept: Concept) -> np.ndarray:
                cols = [columns[concepts_to_str([concept, p])] for p in partners]
                return (scores[layer][:, cols] > 0).float().mean(dim=0).numpy()

            reference_scores = t_tcav(reference)
            for concepts in experimental_sets:
                key = concepts_to_str(concepts)
                p = [random_concept_test(t_tcav(c), reference_scores) for c in concepts]
                result[key][layer]["p_value_random"] = torch.tensor(p, dtype=torch.float64)

    @staticmethod
    def _correct(result: TokenTCAVScores, correction: Optional[str]) -> None:
        if correction is None:
            return
        for name in ("p_value", "p_value_random"):
            cells = [(key, layer) for key in result for layer in result[key] if name in result[key][layer]]
            if not cells:
                continue
            flat = np.concatenate([result[key][layer][name].numpy() for key, layer in cells])
            adjusted = correct_pvalues(flat, correction)
            start = 0
            for key, layer in cells:
                n = result[key][layer][name].numel()
                result[key][layer][name + "_corrected"] = torch.as_tensor(adjusted[start : start + n])
                start += n

    # ------------------------------------------------------------------ heatmaps

    def token_sensitivity(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        experimental_set: List[Concept],
        concept: Concept,
        layer: LayerSpec,
        target: TargetLike = None,
        additional_forward_args: Any = None,
        rescale: bool = False,
    ) -> Tensor:
        r"""
        Per-token attention-weighted directional derivatives ``D_t = a_t (g_t . v)`` for a
        heatmap, with ``v`` the mean of the concept's R unit CAVs (D is linear in v, so this
        is the mean of the R per-CAV maps).

        Args:
            inputs (Tensor or tuple[Tensor, ...]): The examples.
            experimental_set (list[Concept]): The concept's set (its CAVs are loaded or
                        trained).
            concept (Concept): The concept of the map.
            layer (str or int): One of this instance's layers (name or block index).
            target (int, list, Tensor, optional): As in :meth:`interpret`.
            additional_forward_args (Any, optional): E.g. the attention mask.
            rescale (bool): Multiply each example's map by ``||a|| / ||S||`` as the
                        reference implementation does (magnitudes only; signs unchanged).
                        Default: False

        Returns:
            Tensor: Images: ``(batch, rows, cols)`` per patch (class and distillation tokens
            left out); text: ``(batch, tokens)`` aligned with ``input_ids``, 0 at the
            classification token, the other special tokens and padding (their terms still
            count in the example score ``s(x)``).
        """
        name = self._layer_name(layer)
        if concept not in experimental_set:
            raise ValueError(f"Concept {concept.name!r} is not in the given experimental set.")
        self.compute_cavs([experimental_set])
        key = concepts_to_str(experimental_set)
        weights = self.cavs[key][name].stats["weights"]  # type: ignore[index]
        vector = weights[list(experimental_set).index(concept)].mean(dim=0)
        maps = []
        for batch_inputs, batch_target, extra in self._batches(inputs, target, additional_forward_args):
            captured = self._capture(batch_inputs, batch_target, extra)
            grad, weight, valid = self._token_terms(captured)[name]
            sensitivity = (grad @ vector.to(grad.device)) * valid
            d = weight * sensitivity
            if rescale:
                attention = weight if self.attention_weighting else valid.float()
                norms = sensitivity.norm(dim=1, keepdim=True).clamp_min(1e-12)
                scale = attention.norm(dim=1, keepdim=True) / norms
                d = d * scale
            layout = infer_layout(captured, self.capturer.model, batch_inputs)
            players = default_player_mask(captured, layout, batch_inputs, self._special_ids)
            maps.append(layout.to_output((d * players).detach()).cpu())
        return torch.cat(maps)

    def _layer_name(self, layer: LayerSpec) -> str:
        if isinstance(layer, str) and layer in self.blocks:
            return layer
        if isinstance(layer, int) and not isinstance(layer, bool):
            n = len(self.capturer.modules)
            for name, idx in self.attention_index.items():
                if -n <= layer < n and idx == layer % n:
                    return name
        raise ValueError(f"Layer {layer!r} is not one of this TokenTCAV's layers {self.layers}.")
