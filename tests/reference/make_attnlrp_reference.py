#!/usr/bin/env python3
"""Reference relevances of AttnLRP computed by the authors' library (lxt 2.1), for tests/test_attn_lrp.py.

Runs in a SEPARATE environment with lxt (never a dependency of this package), from the repository root:

    python3 -m venv /tmp/lxtenv
    /tmp/lxtenv/bin/pip install -c constraints.txt torch==2.13.0 transformers==5.24.0 numpy==1.26.4
    /tmp/lxtenv/bin/pip install --no-deps lxt==2.1
    /tmp/lxtenv/bin/python tests/reference/make_attnlrp_reference.py

and writes ``tests/reference/attnlrp_reference.pt``: for each tiny seeded model (BERT, GPT-2, Llama-style,
ViT, built by ``tests/tiny_models.py``), its weights, the inputs, the target class, the logits and lxt's
relevance of every token (patch), ``sum_d e * de`` at the input embeddings.

lxt's documented entry point (``lxt.efficient.monkey_patch``) fails to import under transformers 5 (its
model files import modules that no longer exist), so this script applies lxt's own rule functions
(``lxt.efficient.rules`` and ``lxt.efficient.patches``) the way its model patches do: the LayerNorm /
RMSNorm forwards with the normalisation's gradient stopped, the identity rule on every activation class,
the gated MLP's uniform rule, and lxt's wrapper of transformers' attention functions (gradients of query and
key divided by 4, of value by 2) around the models' sdpa attention (lxt 2.1 replaces each model module's
attention registry by a plain dict; transformers 5 asks it for ``get_interface``, which a small dict subclass
adds). The models run in eval mode (no dropout).
"""

import importlib
import os
import sys
import types
from typing import Any, Callable, Dict

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "reference", "attnlrp_reference.pt")


def _lxt_rules() -> types.ModuleType:
    """lxt.efficient.patches without lxt.efficient/__init__ (which imports the broken model files)."""
    import lxt

    package = types.ModuleType("lxt.efficient")
    package.__path__ = [os.path.join(os.path.dirname(lxt.__file__), "efficient")]
    sys.modules["lxt.efficient"] = package
    importlib.import_module("lxt.efficient.rules")
    return importlib.import_module("lxt.efficient.patches")


def _apply_lxt(patches: types.ModuleType) -> None:
    """lxt's AttnLRP rules on every class the tiny models use (process-wide, as lxt does)."""
    import transformers.activations as activations
    from torch import nn
    from transformers.models.bert import modeling_bert
    from transformers.models.gpt2 import modeling_gpt2
    from transformers.models.llama import modeling_llama
    from transformers.models.vit import modeling_vit

    patches.patch_method(patches.layer_norm_forward, nn.LayerNorm)
    patches.patch_method(patches.rms_norm_forward, modeling_llama.LlamaRMSNorm)
    patches.patch_method(patches.gated_mlp_forward, modeling_llama.LlamaMLP)  # identity rule on act_fn inside
    for cls in (nn.Tanh, activations.GELUActivation, activations.NewGELUActivation):
        patches.patch_method(patches.non_linear_forward, cls, keep_original=True)
    for module in (modeling_bert, modeling_gpt2, modeling_vit, modeling_llama):
        patches.patch_attention(module)  # the module's eager function and a dict of the registry's, wrapped
        module.ALL_ATTENTION_FUNCTIONS = _Registry(module.ALL_ATTENTION_FUNCTIONS)


class _Registry(dict):  # type: ignore[type-arg]
    """lxt 2.1 leaves a plain dict where transformers 5 calls ``get_interface(name, default)``."""

    def get_interface(self, name: str, default: Callable[..., Any]) -> Callable[..., Any]:
        return self[name] if name != "eager" and name in self else default


def _relevance(model: torch.nn.Module, run: Callable[[], torch.Tensor]) -> Dict[str, torch.Tensor]:
    """lxt's relevance at the input embeddings: forward, backward of the predicted logit, ``e * de``."""
    kept: Dict[str, torch.Tensor] = {}

    def hook(module: Any, args: Any, output: torch.Tensor) -> torch.Tensor:
        output = output.detach().requires_grad_(True)
        kept["embeddings"] = output
        return output

    handle = model.get_input_embeddings().register_forward_hook(hook)
    try:
        logits = run()
    finally:
        handle.remove()
    target = logits.argmax(dim=1)
    logits.gather(1, target[:, None]).sum().backward()
    embeddings = kept["embeddings"]
    relevance = (embeddings * embeddings.grad).sum(dim=-1)
    return {"target": target, "logits": logits.detach(), "relevance": relevance.detach()}


def main() -> None:
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from tiny_models import image_batch, text_batch, tiny_image_model, tiny_text_model, zoo_model

    patches = _lxt_rules()
    models = {
        "bert": tiny_text_model("bert", seed=3),
        "gpt2": zoo_model("gpt2", seed=3),
        "llama": zoo_model("llama", seed=3),
        "vit": tiny_image_model("vit", seed=3),
    }
    states = {name: {k: v.clone() for k, v in model.state_dict().items()} for name, model in models.items()}
    _apply_lxt(patches)
    ids, mask = text_batch(seed=5)
    pixels = image_batch(seed=5)
    reference: Dict[str, Any] = {"versions": {"torch": str(torch.__version__)}}
    import lxt
    import transformers

    reference["versions"].update(
        transformers=str(transformers.__version__), lxt=str(getattr(lxt, "__version__", "2.1"))
    )
    for name, model in models.items():
        if name == "vit":
            out = _relevance(model, lambda m=model: m(pixel_values=pixels).logits)
            inputs = {"pixel_values": pixels}
        else:
            out = _relevance(model, lambda m=model: m(input_ids=ids, attention_mask=mask).logits)
            inputs = {"input_ids": ids, "attention_mask": mask}
        reference[name] = {"state_dict": states[name], "inputs": inputs, **out}
        print(name, "logit", out["logits"].gather(1, out["target"][:, None])[:, 0].tolist())
        print(name, "sum R", out["relevance"].sum(dim=1).tolist())
    torch.save(reference, OUT)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
