"""Heatmap arrays and figures, and the localisation scores, on hand-built cases."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from captum_attn_shapley.metrics import mass_inside, pointing_game  # noqa: E402
from captum_attn_shapley.visualization import (  # noqa: E402
    overlay_patch_heatmap,
    plot_patch_heatmap,
    plot_token_heatmap,
    token_colours,
    upsample_patch_map,
)


def test_nearest_upsampling_repeats_each_patch():
    scores = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    pixels = upsample_patch_map(scores, (8, 8), mode="nearest")
    assert pixels.shape == (8, 8)
    assert torch.all(pixels[:4, :4] == 1.0) and torch.all(pixels[:4, 4:] == -2.0)
    assert torch.all(pixels[4:, :4] == 0.5) and torch.all(pixels[4:, 4:] == 3.0)
    batch = upsample_patch_map(torch.stack([scores, -scores]), (8, 8), mode="nearest")
    assert batch.shape == (2, 8, 8) and torch.equal(batch[1], -pixels)
    smooth = upsample_patch_map(scores, (8, 8))
    assert float(smooth.min()) >= -2.0 and float(smooth.max()) <= 3.0
    with pytest.raises(ValueError, match="rows, cols"):
        upsample_patch_map(torch.zeros(4), (8, 8))


def test_overlay_blends_the_colour_map_over_the_image():
    image = np.full((8, 8, 3), 0.5)
    scores = np.array([[1.0, -1.0], [0.0, 0.0]])
    out = overlay_patch_heatmap(image, scores, cmap="bwr", alpha=1.0, mode="nearest")
    assert out.shape == (8, 8, 3)
    assert np.allclose(out[0, 0], [1, 0, 0])  # +max -> red
    assert np.allclose(out[0, 7], [0, 0, 1])  # -max -> blue
    assert np.allclose(out[7, 0], [1, 1, 1], atol=0.01)  # 0 -> white, the centre of bwr
    half = overlay_patch_heatmap(torch.full((3, 8, 8), 0.5), scores, alpha=0.5, mode="nearest")
    assert np.allclose(half[0, 0], [0.75, 0.25, 0.25])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        overlay_patch_heatmap(image - 1.0, scores)


def test_figures_have_a_colour_bar():
    fig = plot_patch_heatmap(torch.rand(3, 16, 16), torch.randn(4, 4), title="striped")
    assert len(fig.axes) == 2  # the image and its colour bar
    assert fig.axes[0].get_title() == "striped"
    plt.close(fig)
    tokens = ["[CLS]", "the", "movie", "was", "wonderful", "[SEP]"]
    fig = plot_token_heatmap(tokens, [0.0, 0.1, -0.2, 0.0, 0.9, 0.0], title="positive words")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == tokens and len(fig.axes) == 2
    plt.close(fig)
    with pytest.raises(ValueError, match="one score per token"):
        plot_token_heatmap(tokens, [0.1, 0.2])


def test_token_colours_are_centred_on_zero():
    colours = token_colours([-2.0, 0.0, 2.0, 1.0])
    assert colours.shape == (4, 4)
    assert np.allclose(colours[0, :3], [0, 0, 1]) and np.allclose(colours[2, :3], [1, 0, 0])
    assert np.allclose(colours[1, :3], [1, 1, 1], atol=0.01)
    assert colours[3, 0] == pytest.approx(1.0) and 0.4 < colours[3, 1] < 0.6


def test_mass_inside_and_pointing_game_on_hand_built_maps():
    scores = torch.tensor([[[3.0, 1.0], [-5.0, 0.0]], [[0.0, 2.0], [2.0, -1.0]], [[-1.0, -1.0], [-1.0, -1.0]]])
    inside = torch.tensor([[1.0, 0.0], [1.0, 0.0]]).expand(3, 2, 2)
    mass = mass_inside(scores, inside)
    assert mass[0] == pytest.approx(3 / 4)  # negatives ignored
    assert mass[1] == pytest.approx(2 / 4)
    assert torch.isnan(mass[2])  # no positive mass
    hits = pointing_game(scores, inside)
    assert hits.tolist() == [True, False, True]  # the argmax of map 3 is cell 0 (ties: first)
    # partial coverage: the pixel-level mass of the nearest-upsampled map
    coverage = torch.tensor([[[0.25, 0.0], [0.0, 0.0]]])
    assert mass_inside(torch.tensor([[[2.0, 2.0], [0.0, 0.0]]]), coverage)[0] == pytest.approx(0.125)
    assert not bool(pointing_game(torch.tensor([[[2.0, 0.0], [0.0, 0.0]]]), coverage)[0])
    with pytest.raises(ValueError, match="same shape"):
        mass_inside(scores, inside[:, :1])
