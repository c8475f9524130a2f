#!/usr/bin/env python3
"""AttnLRP's conservation and cost on the embedded trained models (docs/attnlrp.md).

For the default tweet classifier (MiniLM) on held-out tweets and the texture ViT on generated textures: the
relative conservation gap ``|sum_t R_t - y| / |y|`` of the target (predicted) logit, and the time of one
AttnLRP call over the time of one gradient x input call (Captum's ``LayerGradientXActivation`` on the input
embeddings: one forward and one plain backward), median of interleaved repeats; for the classifier, where
the logit's relevance goes (word, position and token-type embeddings, the rest). Writes
``benchmarks/results/attnlrp_conservation.json``.

    python benchmarks/attnlrp_conservation.py [--n 64] [--repeats 5]
"""

import argparse
import json
import os
import statistics
import time
from typing import Any, Callable, Dict

import torch
from captum.attr import LayerGradientXActivation

from captum_attn_shapley.attr import AttnLRP
from captum_attn_shapley.capture import InfluenceRequest

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "attnlrp_conservation.json")


def _measure(model: Any, inputs: Any, extra: tuple, forward: Callable[..., Any], repeats: int) -> Dict[str, Any]:
    lrp = AttnLRP(forward, model=model)
    target = forward(inputs, *extra).argmax(dim=1)
    relevance, delta = lrp.attribute(
        inputs, target=target, additional_forward_args=extra, return_convergence_delta=True
    )
    logit = forward(inputs, *extra).gather(1, target[:, None])[:, 0].detach()
    gap = (delta.abs() / logit.abs()).double()
    plain = LayerGradientXActivation(forward, model.get_input_embeddings())
    times: Dict[str, list] = {"attnlrp": [], "grad_x_input": []}
    calls = {
        "attnlrp": lambda: lrp.attribute(inputs, target=target, additional_forward_args=extra),
        "grad_x_input": lambda: plain.attribute(inputs, target=target, additional_forward_args=extra),
    }
    for name, call in calls.items():
        call()  # warm-up
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "n": int(target.shape[0]),
        "relative_gap_median": float(gap.median()),
        "relative_gap_mean": float(gap.mean()),
        "relative_gap_p90": float(gap.quantile(0.9)),
        "relevance_sum_over_logit_median": float((relevance.flatten(1).sum(1) / logit).median()),
        "seconds_attnlrp": median["attnlrp"],
        "seconds_grad_x_input": median["grad_x_input"],
        "time_ratio": median["attnlrp"] / median["grad_x_input"],
    }


def _bert_budget(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> Dict[str, float]:
    """Where the target logit's relevance goes in a BERT-like model, summed over tokens, mean over examples,
    as fractions of the logit: the word embeddings (AttnLRP's relevance), the position and token-type
    embeddings (inputs AttnLRP does not attribute to tokens), the biases of the linear layers and LayerNorms,
    and the rest (the softmax rule's linearisation, the LayerNorms' epsilon); and the relevance the attention
    probabilities receive (of which the softmax rule passes on only a part)."""
    embeddings = model.base_model.embeddings
    modules = [embeddings.word_embeddings, embeddings.position_embeddings, embeddings.token_type_embeddings]
    biased = [
        m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm)) and m.bias is not None
    ]
    lrp = AttnLRP(model)
    captured = lrp.capturer.capture(
        ids,
        additional_forward_args=(mask,),
        layers=[-1],
        state_modules=modules + biased,
        state_gradients=True,
        request=InfluenceRequest("cls_row", "lrp_attention"),
    )
    assert captured.states is not None and captured.state_gradients is not None
    logit = captured.logits.gather(1, captured.target[:, None])[:, 0].double()
    pairs = list(zip(captured.states, captured.state_gradients))
    sums = [(s.double() * g.double()).sum() for s, g in pairs[: len(modules)]]
    # a bias b absorbs b . dy/d(output) of its layer (the rules' gradient)
    bias = sum((g.double() * m.bias.detach().double()).sum() for m, (_, g) in zip(biased, pairs[len(modules) :]))
    total = logit.sum()
    word, position, token_type = (float(x / total) for x in sums)
    biases = float(bias / total)
    rest = 1 - word - position - token_type - biases
    return {
        "word": word,
        "position": position,
        "token_type": token_type,
        "biases": biases,
        "softmax_and_rest": rest,
        "into_attention_probabilities": _into_attention(lrp, ids, mask, total),
    }


def _into_attention(lrp: AttnLRP, ids: torch.Tensor, mask: torch.Tensor, total: torch.Tensor) -> float:
    """``sum A * dA`` over the layers, heads and entries (the relevance the attention probabilities receive),
    as a fraction of the summed target logits."""
    raw = lrp.capturer.capture(
        ids, additional_forward_args=(mask,), request=InfluenceRequest("raw", "lrp_attention")
    )
    assert raw.gradients is not None
    return sum(float((a.double() * g.double()).sum() / total) for a, g in zip(raw.attentions, raw.gradients))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="examples per model (one batch)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    from captum_attn_shapley.demos import load_default_classifier, load_texture_classifier, load_tweets
    from captum_attn_shapley.demos.texture_vit import to_pixel_values
    from captum_attn_shapley.demos.textures import make_texture_dataset

    results: Dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    model, tokenizer, _ = load_default_classifier(progress=False)
    tweets = load_tweets("test", n_per_class=args.n // 2, seed=0)
    enc = tokenizer(list(tweets.texts), return_tensors="pt", padding=True, truncation=True, max_length=64)

    def text_forward(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=ids, attention_mask=mask).logits

    results["default_classifier"] = _measure(
        model, enc["input_ids"], (enc["attention_mask"],), text_forward, args.repeats
    )
    results["default_classifier"]["budget"] = _bert_budget(model, enc["input_ids"], enc["attention_mask"])
    vit, _, _ = load_texture_classifier(progress=False)
    images = make_texture_dataset(args.n, seed=0).images
    pixels = to_pixel_values(images)

    def image_forward(pixel_values: torch.Tensor) -> torch.Tensor:
        return vit(pixel_values=pixel_values).logits

    results["texture_vit"] = _measure(vit, pixels, (), image_forward, args.repeats)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as handle:
        json.dump(results, handle, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
