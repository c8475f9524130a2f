"""Captum's own visualisation helpers accept our outputs."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from captum.attr import visualization as viz  # noqa: E402

from captum_attn_shapley import AttnGradShapley  # noqa: E402
from captum_attn_shapley.visualization import image_attr_maps  # noqa: E402
from captum_attn_shapley.visualization.captum_adapters import text_records  # noqa: E402
from tests.tiny_models import image_batch, tiny_image_model  # noqa: E402


def test_text_records_feed_visualize_text(default_classifier):
    model, tokenizer, _ = default_classifier
    enc = tokenizer(["the crew was rude", "what a lovely flight, thanks"], return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    attributions, delta = AttnGradShapley(model).attribute(
        ids, additional_forward_args=(mask,), return_convergence_delta=True
    )
    logits = model(input_ids=ids, attention_mask=mask).logits
    records = text_records(
        attributions,
        ids,
        tokenizer,
        mask,
        logits=logits,
        true_labels=[0, 1],
        label_names=["negative", "positive"],
        delta=delta,
    )
    assert len(records) == 2
    for b, record in enumerate(records):
        real = mask[b].bool()
        assert record.raw_input_ids == tokenizer.convert_ids_to_tokens(ids[b][real].tolist())
        scores = attributions[b][real]
        assert torch.allclose(record.word_attributions, scores / scores.abs().max())
        assert record.attr_score == pytest.approx(float(scores.sum()), rel=1e-5)
        probs = torch.softmax(logits[b], dim=-1)
        assert record.pred_prob == pytest.approx(float(probs.max()), rel=1e-5)
        assert record.pred_class == ["negative", "positive"][int(probs.argmax())]
        assert record.attr_class == record.pred_class  # default target: the prediction
        assert record.convergence_score == pytest.approx(float(delta[b]))
    assert records[0].true_class == "negative" and records[1].true_class == "positive"
    html = viz.visualize_text(records)  # rendered through IPython.display (the test extra installs IPython)
    assert "rude" in html.data and "lovely" in html.data and "negative" in html.data


def test_text_records_reject_image_shaped_scores():
    with pytest.raises(ValueError, match="image_attr_maps"):
        text_records(torch.zeros(1, 4, 4), torch.zeros(1, 16, dtype=torch.long), tokenizer=None)


def test_image_attr_maps_feed_visualize_image_attr():
    vit = tiny_image_model("vit")
    pixels = image_batch(batch=2)
    patches = AttnGradShapley(vit).attribute(pixels)
    maps = image_attr_maps(patches, pixels)
    assert maps.shape == (2, 16, 16, 1) and maps.dtype == np.float32
    assert np.allclose(maps[0, :4, :4, 0], float(patches[0, 0, 0]))  # nearest: one block per patch
    assert np.allclose(maps[1].sum(), 16 * float(patches[1].sum()), rtol=1e-4)  # 4x4 pixels per patch
    image = (pixels[0] - pixels[0].min()) / (pixels[0].max() - pixels[0].min())
    fig, ax = viz.visualize_image_attr(
        maps[0],
        image.permute(1, 2, 0).numpy(),
        method="blended_heat_map",
        sign="all",
        show_colorbar=True,
        use_pyplot=False,
    )
    assert len(fig.axes) == 2
    plt.close(fig)
    assert image_attr_maps(patches[0], (16, 16)).shape == (16, 16, 1)
