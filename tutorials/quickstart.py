"""Quick start: explain the embedded sentiment classifier with AttnGradShapley.

Run with ``.venv/bin/python tutorials/quickstart.py`` after ``scripts/bootstrap.sh``.
The first run fine-tunes the default classifier (a few minutes on CPU); later runs load it
from the cache.
"""

import torch
from captum.attr import LayerIntegratedGradients

from captum_attn_shapley import AttnGradShapley
from captum_attn_shapley.demos import load_default_classifier

model, tokenizer, info = load_default_classifier()
print(f"default classifier: held-out accuracy {info['accuracy']:.3f}")

texts = ["the flight was late and the crew was rude", "thanks for the lovely and friendly service"]
enc = tokenizer(texts, return_tensors="pt", padding=True)
ids, mask = enc["input_ids"], enc["attention_mask"]


def forward(input_ids, attention_mask):
    """A Captum-style forward function: logits of shape (batch, classes)."""
    return model(input_ids, attention_mask=attention_mask).logits


# One forward and one backward pass for the whole padded batch; exact Shapley values.
explainer = AttnGradShapley(forward, game="max_mutual", weighting="grad_attention")
shapley, delta = explainer.attribute(ids, additional_forward_args=(mask,), return_convergence_delta=True)
print("efficiency gap per example:", delta.tolist())

# Captum's own method in the same loop, for comparison.
baseline = torch.where(torch.isin(ids, torch.tensor(tokenizer.all_special_ids)), ids, tokenizer.pad_token_id)
lig = LayerIntegratedGradients(forward, model.bert.embeddings)
predicted = forward(ids, mask).argmax(dim=1)
ig = lig.attribute(ids, baselines=baseline, target=predicted, additional_forward_args=(mask,), n_steps=50)
ig = ig.sum(dim=-1)

for b, text in enumerate(texts):
    label = model.config.id2label[int(predicted[b])]
    print(f"\n{text!r} -> {label}")
    print(f"{'token':<12} {explainer.variant_name:>28} {'LayerIntegratedGradients':>26}")
    for token, s, g in zip(tokenizer.convert_ids_to_tokens(ids[b]), shapley[b], ig[b]):
        if token != tokenizer.pad_token:
            print(f"{token:<12} {float(s):>28.5f} {float(g):>26.5f}")
