"""The embedded models, datasets and ground-truth tasks (offline; trained and cached on first use).

Nothing outside :mod:`captum_attn_shapley.demos` and :mod:`captum_attn_shapley.cli` imports this
package: the library works on any Hugging Face model, and these are its worked examples.
"""

from captum_attn_shapley.demos.datasets import load_text_dataset, load_tweets
from captum_attn_shapley.demos.default_model import load_classifier, load_default_classifier
from captum_attn_shapley.demos.planted import make_planted_dataset, planted_token_mask
from captum_attn_shapley.demos.planted_model import load_planted_classifier
from captum_attn_shapley.demos.textures import make_texture_dataset
from captum_attn_shapley.demos.vision_model import load_texture_classifier

__all__ = [
    "load_classifier",
    "load_default_classifier",
    "load_planted_classifier",
    "load_text_dataset",
    "load_tweets",
    "make_planted_dataset",
    "make_texture_dataset",
    "planted_token_mask",
    "load_texture_classifier",
]
