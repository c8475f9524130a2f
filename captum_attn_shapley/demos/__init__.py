"""The embedded models, datasets and ground-truth tasks (offline; trained and cached on first use).

Nothing outside :mod:`captum_attn_shapley.demos` and :mod:`captum_attn_shapley.cli` imports this
package: the library works on any Hugging Face model, and these are its worked examples.

- Loaders: :func:`load_classifier`, :func:`load_default_classifier` (tweets),
  :func:`load_planted_classifier` (planted words), :func:`load_texture_classifier` and
  :func:`load_texture_vit` (texture images), :func:`load_recall_lm` (a causal LM of key-value recall).
- Datasets: :func:`load_tweets`, :func:`load_text_dataset`, :func:`load_hub_dataset`.
- Tasks with known ground truth: :func:`make_planted_dataset`, :func:`planted_token_mask`,
  :func:`token_recovery` (text); :func:`make_texture_dataset`, :func:`concept_images`,
  :func:`patch_mask_fraction` (vision); :func:`recall_prompts` (generation: the prompt tokens that decide
  the recall LM's answer).
- Ground-truth runs of TokenTCAV: :func:`vision_ground_truth`, :func:`text_ground_truth`,
  :func:`tweet_ground_truth` (results in a :class:`GroundTruthReport`).
"""

from captum_attn_shapley.demos.datasets import load_hub_dataset, load_text_dataset, load_tweets
from captum_attn_shapley.demos.default_model import load_classifier, load_default_classifier
from captum_attn_shapley.demos.ground_truth_report import GroundTruthReport
from captum_attn_shapley.demos.planted import make_planted_dataset, planted_token_mask, token_recovery
from captum_attn_shapley.demos.planted_model import load_planted_classifier
from captum_attn_shapley.demos.recall import RecallPrompts, recall_prompts, recall_tokenizer
from captum_attn_shapley.demos.recall_lm import load_recall_lm
from captum_attn_shapley.demos.tcav_ground_truth import text_ground_truth, tweet_ground_truth, vision_ground_truth
from captum_attn_shapley.demos.textures import concept_images, make_texture_dataset, patch_mask_fraction
from captum_attn_shapley.demos.vision_model import load_texture_classifier, load_texture_vit

__all__ = [
    "GroundTruthReport",
    "RecallPrompts",
    "concept_images",
    "load_classifier",
    "load_default_classifier",
    "load_hub_dataset",
    "load_planted_classifier",
    "load_recall_lm",
    "load_text_dataset",
    "load_texture_classifier",
    "load_texture_vit",
    "load_tweets",
    "make_planted_dataset",
    "make_texture_dataset",
    "patch_mask_fraction",
    "planted_token_mask",
    "recall_prompts",
    "recall_tokenizer",
    "text_ground_truth",
    "token_recovery",
    "tweet_ground_truth",
    "vision_ground_truth",
]
