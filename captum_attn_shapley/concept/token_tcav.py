#!/usr/bin/env python3
"""TokenTCAV: attention-weighted, token-level concept sensitivity (T-TCAV).

A subclass of Captum's :class:`captum.concept.TCAV` that keeps Captum's ``Concept``, ``CAV`` storage and
``Classifier`` interface but works on tokens (see the mathematics page of the documentation, section
"Token-level concept sensitivity (T-TCAV)"):

1. every non-padding token of every concept example is one activation vector of the
   layer's residual stream (a transformer block's output);
2. a relative CAV separates a concept's tokens from those of an equally sized random draw
   of examples of the other concepts of its set, repeated R times (default 50);
3. for each batch of target examples, one forward and backward pass gives the attention-weighted token gradients
   ``a_t g_t`` of every selected layer (:class:`~captum_attn_shapley.attr.LayerAttentionWeightedGradient`, the
   ``layer_attr_method``): the target logit's gradient w.r.t. each token state times the classification token's
   attention to it in the same layer;
4. ``D_t = a_t * (g_t . v)``, ``s(x) = sum_t D_t`` and T-TCAV = the fraction of examples
   with ``s(x) > 0``, with a t-test of the R scores against 0.5 and, optionally, Captum's
   test against random concepts and a multiple-testing correction.
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union, cast

import torch
from captum._utils.typing import TensorOrTupleOfTensorsGeneric
from captum.concept import CAV, TCAV, Classifier, Concept
from captum.concept._utils.common import concepts_to_str
from torch import Tensor
from torch.nn import Module
from tqdm.auto import tqdm

from captum_attn_shapley._utils.fingerprint import model_fingerprint
from captum_attn_shapley._utils.log import log_usage
from captum_attn_shapley._utils.targets import TargetLike
from captum_attn_shapley._utils.validation import check_inputs
from captum_attn_shapley.attr.layer_weighted_gradient import LayerAttentionWeightedGradient, TokenTerms
from captum_attn_shapley.capture import (
    CapturedAttention,
    ModuleSpec,
    OutputSelector,
    default_player_mask,
    resolve_special_token_ids,
)
from captum_attn_shapley.capture.players import infer_layout
from captum_attn_shapley.concept._activations import sensitivity_map, token_activations
from captum_attn_shapley.concept._assembly import (
    add_random_test,
    apply_correction,
    assemble_scores,
    random_pairs,
    stack_cavs,
)
from captum_attn_shapley.concept._cav_store import cav_folder, cav_location, check_model_record, load_or_train_cavs
from captum_attn_shapley.concept._cav_training import CAVSettings, TokenActivations
from captum_attn_shapley.concept._inputs import (
    check_model_and_settings,
    check_random_concepts,
    check_sets,
    check_test_settings,
    register_concepts,
    split_batches,
)
from captum_attn_shapley.concept._layers import LayerSpec, layer_name, resolve_layers
from captum_attn_shapley.concept.classifier import TokenLogisticClassifier
from captum_attn_shapley.concept.scores import TokenTCAVScores


class TokenTCAV(TCAV):  # type: ignore[misc]  # captum ships no types: TCAV is Any
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
        model_id (str, optional): Folder of this model's CAVs under ``save_path``: ASCII letters, digits and
                    ``_ + = - .`` (else ``ValueError``). Default: the class name and a fingerprint of the
                    weights, so CAVs never cross models; a ``model_id`` of other weights raises an error.
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

    ``layer_attr_method`` is a :class:`~captum_attn_shapley.attr.LayerAttentionWeightedGradient` of the blocks.

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
        forward_func: Optional[Callable[..., Any]] = None,
        attention_modules: Optional[Sequence[ModuleSpec]] = None,
        attention_output_index: OutputSelector = 1,
        switch_to_eager: bool = True,
        show_progress: bool = False,
        special_token_ids: Optional[Sequence[int]] = None,
        **classifier_kwargs: Any,
    ) -> None:
        model, forward = check_model_and_settings(model, forward_func, repeats, batch_size)
        # a_t * dy/dh_t of the target examples; its layer is set to the blocks once they are resolved
        method = LayerAttentionWeightedGradient(
            forward, None, model, attention_modules, attention_output_index, switch_to_eager, attention_weighting
        )
        self.capturer = method.capturer
        names, self.blocks, self.attention_index = resolve_layers(self.capturer, model, layers)
        method.layer = list(self.blocks.values())
        self.fingerprint = model_fingerprint(model)
        model_id, save_path = cav_location(type(model).__name__, self.fingerprint, model_id, save_path)
        classifier = classifier if classifier is not None else TokenLogisticClassifier()
        super().__init__(model, names, model_id, classifier, method, save_path=save_path, **classifier_kwargs)
        check_model_record(self.save_path, self.model_id, self.fingerprint, type(model).__name__)
        self.repeats = repeats
        self.attention_weighting = attention_weighting
        self.batch_size = batch_size
        self.seed = seed
        self.show_progress = show_progress
        self._special_ids = resolve_special_token_ids(special_token_ids, model=self.capturer.model, required=False)
        self.random_cavs: Dict[str, Dict[str, CAV]] = {}
        self._activations: Dict[Tuple[Any, str], TokenActivations] = {}
        self._activation_digests: Dict[Any, str] = {}  # the examples each concept's activations are of

    def _cav_folder(self, repeats: int) -> str:
        """The model_id-relative folder of CAVs trained with these settings."""
        return cav_folder(self.model_id, repeats, self.seed, self.classifier, self.classifier_kwargs)

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
        activations = token_activations(self.capturer, self.blocks, self.attention_index, layers, concept)
        for layer in layers:
            self._activations[(concept.id, layer)] = activations[layer]

    def _cavs_for(
        self,
        experimental_sets: Sequence[Sequence[Concept]],
        repeats: int,
        store: Dict[str, Dict[str, CAV]],
        force_train: bool,
    ) -> None:
        assert self.classifier is not None
        settings = CAVSettings(
            repeats=repeats,
            classifier=self.classifier,
            classifier_kwargs=self.classifier_kwargs,
            seed=self.seed,
            fingerprint=self.fingerprint,
            save_path=self.save_path,
            folder=self._cav_folder(repeats),
            show_progress=self.show_progress,
        )
        generate, digests = self.generate_activation, self._activation_digests
        load_or_train_cavs(
            experimental_sets, self.layers, settings, store, self._activations, generate, force_train, digests
        )

    def compute_cavs(
        self, experimental_sets: List[List[Concept]], force_train: bool = False, processes: Optional[int] = None
    ) -> Dict[str, Dict[str, CAV]]:
        r"""
        Loads or trains the relative token CAVs of every experimental set at every layer.

        For each concept ``C`` of a set and each of the R repeats, the classifier
        separates ``C``'s token activations from those of a random draw (as many examples
        as ``C`` has) of the set's other concepts; the CAV is the unit-normalised weight
        vector of ``C``. A CAV's ``stats["weights"]`` has shape ``(k, R, hidden)``.
        CAVs are saved with Captum's :class:`~captum.concept.CAV` under ``save_path/model_id/`` (a folder per
        settings and per set of examples) and reused only for the same model, settings and examples.

        Args:
            experimental_sets (list[list[Concept]]): The concept sets.
            force_train (bool): Train again even if saved CAVs exist. Default: False
            processes (int, optional): Accepted for Captum compatibility; CAVs are trained in this process.

        Returns:
            dict: ``self.cavs``, by concepts key and layer.
        """
        check_sets(experimental_sets)
        for concepts in experimental_sets:
            register_concepts(self.concepts, concepts)
        self._cavs_for(experimental_sets, self.repeats, self.cavs, force_train)
        return cast(Dict[str, Dict[str, Any]], self.cavs)  # set by (untyped) TCAV.__init__

    def _token_terms(self, captured: CapturedAttention) -> Dict[str, TokenTerms]:
        """Per layer: token gradients ``g`` (B, T, F), weights ``w`` (B, T) and the valid mask."""
        return dict(zip(self.layers, self.layer_attr_method.token_terms(captured)))

    def _capture(
        self, inputs: Tuple[Tensor, ...], target: TargetLike, extra: Tuple[Any, ...]
    ) -> CapturedAttention:
        """One forward and backward pass of a batch through ``layer_attr_method`` (all layers at once)."""
        return cast(CapturedAttention, self.layer_attr_method.capture(inputs, target, extra))

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
            target (int, list, Tensor, optional): Captum-style target; default: the predicted class.
            additional_forward_args (Any, optional): E.g. the attention mask.

        Returns:
            tuple: ``({layer: scores of shape (n_examples, n_cavs)}, targets (n_examples,))``.
        """
        scores: Dict[str, List[Tensor]] = {layer: [] for layer in cavs}
        targets = []
        batches = split_batches(inputs, target, additional_forward_args, self.batch_size, self.capturer.model)
        progress = tqdm(batches, desc="T-TCAV scores", disable=not self.show_progress, leave=False)
        for batch_inputs, batch_target, extra in progress:
            captured = self._capture(batch_inputs, batch_target, extra)
            terms = self._token_terms(captured)
            for layer, vectors in cavs.items():
                pooled = terms[layer].attribution.sum(dim=1)  # sum_t a_t g_t
                scores[layer].append(pooled @ vectors.to(pooled.device, pooled.dtype).T)
            targets.append(captured.target)
        return {layer: torch.cat(parts).cpu() for layer, parts in scores.items()}, torch.cat(targets).cpu()

    @log_usage(part_of_slo=True)
    def interpret(
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
        check_test_settings(kwargs, correction, alpha)
        check_inputs(self.capturer.model, inputs, additional_forward_args)  # before any CAV is trained
        self.compute_cavs(experimental_sets, force_train=force_train)
        randoms = self._random_sets(experimental_sets, random_concepts, force_train)
        matrices = stack_cavs(experimental_sets, self.cavs, randoms, self.random_cavs, self.layers)
        scores, targets = self.example_scores(inputs, matrices, target, additional_forward_args)

        result = TokenTCAVScores(alpha=alpha, correction=correction, num_examples=int(targets.shape[0]))
        column = assemble_scores(result, experimental_sets, self.cavs, scores, self.layers, self.repeats)
        if randoms:
            add_random_test(result, experimental_sets, random_concepts or [], randoms, scores, column, self.layers)
        apply_correction(result, correction)
        return result

    def _random_sets(
        self,
        experimental_sets: Sequence[Sequence[Concept]],
        random_concepts: Optional[Sequence[Concept]],
        force_train: bool,
    ) -> List[str]:
        """Trains (or loads) one CAV per pair of a tested or reference concept and a random partner."""
        if random_concepts is None:
            return []
        random_concepts = check_random_concepts(random_concepts, experimental_sets)
        register_concepts(self.concepts, random_concepts)
        pairs = random_pairs(experimental_sets, random_concepts)
        self._cavs_for(pairs, 1, self.random_cavs, force_train)
        return [concepts_to_str(pair) for pair in pairs]

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
        name = layer_name(layer, self.attention_index, len(self.capturer.modules))
        if concept not in experimental_set:
            raise ValueError(f"Concept {concept.name!r} is not in the given experimental set.")
        self.compute_cavs([experimental_set])
        key = concepts_to_str(experimental_set)
        weights = self.cavs[key][name].stats["weights"]
        vector = weights[list(experimental_set).index(concept)].mean(dim=0)
        maps = []
        for batch_inputs, batch_target, extra in split_batches(
            inputs, target, additional_forward_args, self.batch_size, self.capturer.model
        ):
            captured = self._capture(batch_inputs, batch_target, extra)
            grad, weight, valid = self._token_terms(captured)[name]
            d = sensitivity_map(grad, weight, valid, vector, rescale, self.attention_weighting)
            layout = infer_layout(captured, self.capturer.model, batch_inputs)
            players = default_player_mask(captured, layout, batch_inputs, self._special_ids)
            maps.append(layout.to_output((d * players).detach()).cpu())
        return torch.cat(maps)
