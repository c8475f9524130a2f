"""Tests of the procedural texture images (ground truth) and of the default texture ViT."""

import numpy as np
import pytest
import torch
from skimage.measure import label as connected_components

from captum_attn_shapley.demos import make_texture_dataset, vision_model
from captum_attn_shapley.demos.texture_vit import (
    predict,
    texture_image_processor,
    texture_vit_config,
    to_images,
    to_pixel_values,
)
from captum_attn_shapley.demos.textures import (
    BACKGROUNDS,
    CLASS_NAMES,
    COLOUR_CONCEPTS,
    IMAGE_SIZE,
    PALETTE,
    PLANTED_CONCEPT,
    TEXTURE_CONCEPTS,
    TextureImages,
    concept_images,
    patch_mask_fraction,
)
from captum_attn_shapley.demos.vision_model import train_texture_vit

PALETTE_NAMES = tuple(PALETTE)
PALETTE_RGB = torch.tensor([PALETTE[name] for name in PALETTE_NAMES])


@pytest.fixture(scope="module")
def dataset():
    """100 images (20 per class) with their object-free backgrounds."""
    return make_texture_dataset(100, seed=11, with_backgrounds=True)


def _nearest_palette(pixels):
    """Index into PALETTE_NAMES of the nearest palette colour of each ``(..., 3)`` pixel."""
    return torch.cdist(pixels.reshape(-1, 3), PALETTE_RGB).argmin(dim=1)


def _object_pixels(data, i):
    """``(k, 3)`` colours of the object's pixels in image ``i``."""
    return data.images[i].permute(1, 2, 0)[data.masks[i]]


def _colour_shares(pixels):
    """Fraction of the pixels nearest each palette colour, ``{name: share}`` (non-zero only)."""
    counts = torch.bincount(_nearest_palette(pixels), minlength=len(PALETTE_NAMES))
    return {PALETTE_NAMES[i]: float(c) / len(pixels.reshape(-1, 3)) for i, c in enumerate(counts) if c}


def _foreground(image):
    """Bool ``(H, W)`` map of the less frequent of the two palette colours of a texture fill."""
    nearest = _nearest_palette(image.permute(1, 2, 0)).reshape(image.shape[1:])
    values, counts = nearest.unique(return_counts=True)
    assert len(values) == 2, f"a texture fill has two colours, got {len(values)}"
    return (nearest == values[counts.argmin()]).numpy()


def _spectrum_line_fraction(binary):
    """Dominant period (px) of a binary map, and the share of its power on that frequency's line.

    Straight stripes put (nearly) all their power on the line through the origin along the
    dominant frequency (fundamental and harmonics); zigzags and dot grids spread it.
    """
    size = binary.shape[0]
    window = np.outer(np.hanning(size), np.hanning(size))
    power = np.abs(np.fft.fft2((binary - binary.mean()) * window)) ** 2
    power[0, 0] = 0.0
    freq_row, freq_col = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    peak = np.unravel_index(power.argmax(), power.shape)
    direction = np.array([freq_row[peak], freq_col[peak]])
    period = 1.0 / np.linalg.norm(direction)
    direction /= np.linalg.norm(direction)
    off_line = np.abs(freq_row * direction[1] - freq_col * direction[0]) * size  # in frequency bins
    return period, power[off_line <= 1.0].sum() / power.sum()


# ----------------------------------------------------------------------------- constants


def test_constants_describe_the_task():
    assert IMAGE_SIZE == 64
    assert CLASS_NAMES == ("striped", "dotted", "zigzag", "red", "blue")
    assert TEXTURE_CONCEPTS == ("striped", "dotted", "zigzag")
    assert COLOUR_CONCEPTS == ("red", "blue", "green", "yellow")
    assert BACKGROUNDS == ("brick", "grass", "gravel")
    assert PLANTED_CONCEPT == {name: name for name in CLASS_NAMES}
    assert set(PLANTED_CONCEPT.values()) <= set(TEXTURE_CONCEPTS + COLOUR_CONCEPTS)
    assert {"red", "blue", "green", "yellow", "white", "black"} == set(PALETTE)


# ----------------------------------------------------------------------------- the dataset


def test_dataset_types_shapes_and_ranges(dataset):
    assert isinstance(dataset, TextureImages) and len(dataset) == 100
    assert dataset.images.shape == (100, 3, 64, 64) and dataset.images.dtype == torch.float32
    assert dataset.labels.shape == (100,) and dataset.labels.dtype == torch.int64
    assert dataset.masks.shape == (100, 64, 64) and dataset.masks.dtype == torch.bool
    assert dataset.backgrounds is not None and dataset.backgrounds.shape == dataset.images.shape
    assert dataset.class_names == CLASS_NAMES
    assert 0.0 <= float(dataset.images.min()) and float(dataset.images.max()) <= 1.0
    assert make_texture_dataset(3, seed=0).backgrounds is None


def test_dataset_is_determined_by_its_seed():
    first, again, other = (make_texture_dataset(12, seed=s) for s in (3, 3, 4))
    assert torch.equal(first.images, again.images)
    assert torch.equal(first.labels, again.labels) and torch.equal(first.masks, again.masks)
    assert not torch.equal(first.masks, other.masks)
    assert (first.images - other.images).abs().mean() > 0.05
    # images within a dataset differ too
    assert all((first.images[0] - first.images[i]).abs().mean() > 0.02 for i in range(1, 12))


def test_labels_are_balanced_and_shuffled():
    data = make_texture_dataset(23, seed=1)
    assert torch.bincount(data.labels, minlength=5).tolist() == [5, 5, 5, 4, 4]
    big = make_texture_dataset(50, seed=2)
    assert torch.bincount(big.labels).tolist() == [10] * 5
    assert not torch.equal(big.labels, big.labels.sort().values)  # shuffled
    subset = make_texture_dataset(7, seed=0, classes=("red", "zigzag"))
    assert subset.class_names == ("red", "zigzag")
    assert torch.bincount(subset.labels).tolist() == [4, 3]
    for i in range(7):  # the labels index the given classes: red objects are plain red
        shares = _colour_shares(_object_pixels(subset, i))
        assert (max(shares, key=shares.get) == "red") == (int(subset.labels[i]) == 0)


def test_masks_cover_20_to_45_percent_and_stay_inside_the_image(dataset):
    data = make_texture_dataset(300, seed=5)
    for masks in (dataset.masks, data.masks):
        fraction = masks.float().mean(dim=(1, 2))
        assert float(fraction.min()) >= 0.20 and float(fraction.max()) <= 0.45
        border = masks[:, 0].any(1) | masks[:, -1].any(1) | masks[:, :, 0].any(1) | masks[:, :, -1].any(1)
        assert not border.any()
    # one object per image: a single connected region
    assert all(connected_components(m.numpy(), connectivity=1).max() == 1 for m in data.masks[:60])
    # objects are placed all over the image, not always in the centre
    rows = torch.arange(64.0)
    centre_rows = (data.masks.float().sum(2) * rows).sum(1) / data.masks.float().sum((1, 2))
    assert float(centre_rows.min()) < 27 and float(centre_rows.max()) > 37


def test_backgrounds_are_the_images_without_the_object(dataset):
    outside = ~dataset.masks[:, None].expand_as(dataset.images)
    assert torch.equal(dataset.images[outside], dataset.backgrounds[outside])
    inside = ~outside
    assert (dataset.images[inside] - dataset.backgrounds[inside]).abs().mean() > 0.2
    # muted backgrounds: their mean colour is never close to a palette colour
    mean_colours = dataset.backgrounds.mean(dim=(2, 3))
    assert float(torch.cdist(mean_colours, PALETTE_RGB).min()) > 0.2
    saturation = mean_colours.max(1).values - mean_colours.min(1).values
    assert float(saturation.max()) < 0.3


def test_plain_objects_have_their_class_colour(dataset):
    for i in range(len(dataset)):
        name = CLASS_NAMES[int(dataset.labels[i])]
        if name not in ("red", "blue"):
            continue
        pixels = _object_pixels(dataset, i)
        assert _colour_shares(pixels) == {name: 1.0}
        assert torch.allclose(pixels.mean(0), torch.tensor(PALETTE[name]), atol=0.06)
        assert float(pixels.std(0).max()) < 0.05  # small jitter and noise only


def test_textured_objects_have_two_palette_colours(dataset):
    pairs = set()
    for i in range(len(dataset)):
        name = CLASS_NAMES[int(dataset.labels[i])]
        if name not in TEXTURE_CONCEPTS:
            continue
        shares = _colour_shares(_object_pixels(dataset, i))
        main = {colour: share for colour, share in shares.items() if share > 0.05}
        assert len(main) == 2, (name, shares)
        assert sum(main.values()) > 0.98
        pairs.add(frozenset(main))
    # colour carries no information about the texture: many different pairs occur
    assert len(pairs) >= 10
    assert {colour for pair in pairs for colour in pair} == set(PALETTE)


def test_texture_objects_have_their_declared_structure(dataset):
    for i in range(len(dataset)):
        name = CLASS_NAMES[int(dataset.labels[i])]
        if name not in TEXTURE_CONCEPTS:
            continue
        shares = sorted(_colour_shares(_object_pixels(dataset, i)).values())
        if name == "dotted":
            assert 0.03 < shares[-2] < 0.35  # the dots are the minority colour
        else:
            assert shares[-2] > 0.3  # stripes and zigzag lines: comparable shares


@pytest.mark.parametrize("concept", TEXTURE_CONCEPTS)
def test_texture_concepts_fill_the_image_with_their_pattern(concept):
    images = concept_images(concept, 30, seed=2)
    for image in images:
        foreground = _foreground(image)
        period, on_line = _spectrum_line_fraction(foreground.astype(float))
        components = connected_components(foreground, connectivity=1)
        sizes = np.bincount(components.ravel())[1:]
        if concept == "striped":
            assert 0.4 <= foreground.mean() <= 0.5  # two colours in equal widths
            assert 5.5 <= period <= 11.0  # period 6-10 px
            assert on_line > 0.5  # straight, parallel stripes
            assert components.max() <= 20 and sizes.max() > 100  # long stripes
        elif concept == "zigzag":
            assert 0.3 <= foreground.mean() <= 0.5
            assert on_line < 0.45  # bent lines: power off the dominant direction
            assert sizes.max() > 64  # long lines
        else:
            assert 0.05 <= foreground.mean() <= 0.3
            assert on_line < 0.45
            assert components.max() >= 30 and sizes.max() <= 30  # many small dots


# ----------------------------------------------------------------------------- concept images


def test_concept_images_shapes_ranges_and_determinism():
    for concept in TEXTURE_CONCEPTS + COLOUR_CONCEPTS + ("random",):
        images = concept_images(concept, 4, seed=1)
        assert images.shape == (4, 3, 64, 64) and images.dtype == torch.float32
        assert 0.0 <= float(images.min()) and float(images.max()) <= 1.0
        assert torch.equal(images, concept_images(concept, 4, seed=1))
        assert not torch.equal(images, concept_images(concept, 4, seed=2))
    assert concept_images("dotted", 2, image_size=32).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("concept", COLOUR_CONCEPTS)
def test_colour_concepts_are_near_the_named_colour(concept):
    images = concept_images(concept, 10, seed=3)
    means = images.mean(dim=(2, 3))
    assert torch.allclose(means, torch.tensor(PALETTE[concept]).expand_as(means), atol=0.06)
    assert _colour_shares(images.permute(0, 2, 3, 1)) == {concept: 1.0}


def test_random_concept_images_are_varied_natural_crops():
    images = concept_images("random", 24, seed=0)
    assert float(images.std(dim=(1, 2, 3)).min()) > 0.03  # textured, never flat
    # both kinds of sources occur: muted tinted textures and colourful photographs
    saturation = (images.max(1).values - images.min(1).values).mean(dim=(1, 2))
    assert float(saturation.min()) < 0.15 and float(saturation.max()) > 0.25
    pairwise = (images[:, None] - images[None]).abs().mean(dim=(2, 3, 4))
    assert float(pairwise[~torch.eye(24, dtype=torch.bool)].min()) > 0.01


# ----------------------------------------------------------------------------- patch ground truth


def test_patch_mask_fraction_on_a_hand_built_mask():
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, :8, :8] = True  # the whole top-left patch
    masks[0, 8:12, 8:16] = True  # half of the bottom-right patch
    masks[1, 0, 15] = True  # one pixel of the top-right patch
    expected = torch.tensor([[[1.0, 0.0], [0.0, 0.5]], [[0.0, 1 / 64], [0.0, 0.0]]])
    assert torch.allclose(patch_mask_fraction(masks, 8), expected)
    assert patch_mask_fraction(masks, 16).shape == (2, 1, 1)
    assert torch.allclose(patch_mask_fraction(masks.float(), 4).mean(dim=(1, 2)), masks.float().mean(dim=(1, 2)))


def test_patch_mask_fraction_of_a_dataset(dataset):
    fraction = patch_mask_fraction(dataset.masks, 8)
    assert fraction.shape == (100, 8, 8)
    assert torch.allclose(fraction.mean(dim=(1, 2)), dataset.masks.float().mean(dim=(1, 2)))
    assert bool(((fraction == 1).flatten(1).any(1)).all())  # every object covers a whole patch
    assert bool(((fraction == 0).flatten(1).any(1)).all())  # and leaves some patch free


# ----------------------------------------------------------------------------- argument errors


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_n_must_be_a_positive_integer(n):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        make_texture_dataset(n)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        concept_images("red", n)


@pytest.mark.parametrize("size", [0, 8, 20, 63, -64, 64.0])
def test_image_size_must_be_a_multiple_of_8_from_16(size):
    with pytest.raises(ValueError, match="multiple of 8 and at least 16"):
        make_texture_dataset(2, image_size=size)
    with pytest.raises(ValueError, match="multiple of 8 and at least 16"):
        concept_images("striped", 2, image_size=size)


def test_other_image_sizes_keep_the_ground_truth():
    data = make_texture_dataset(10, seed=0, image_size=32)
    assert data.images.shape == (10, 3, 32, 32) and data.masks.shape == (10, 32, 32)
    fraction = data.masks.float().mean(dim=(1, 2))
    assert float(fraction.min()) >= 0.2 and float(fraction.max()) <= 0.45
    assert make_texture_dataset(2, seed=0, image_size=128).images.shape == (2, 3, 128, 128)


def test_unknown_or_repeated_classes_are_rejected():
    with pytest.raises(ValueError, match=r"unknown classes \['green'\].*'striped'"):
        make_texture_dataset(5, classes=("red", "green"))
    with pytest.raises(ValueError, match="at least one"):
        make_texture_dataset(5, classes=())
    with pytest.raises(ValueError, match="repeat"):
        make_texture_dataset(5, classes=("red", "red"))


def test_unknown_concept_names_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown concept 'plaid'.*'striped'.*'yellow'.*'random'"):
        concept_images("plaid", 3)


def test_patch_mask_fraction_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(n, H, W\)"):
        patch_mask_fraction(torch.zeros(8, 8, dtype=torch.bool), 4)
    with pytest.raises(ValueError, match="dividing the mask sides"):
        patch_mask_fraction(torch.zeros(1, 8, 8, dtype=torch.bool), 3)
    with pytest.raises(ValueError, match="dividing the mask sides"):
        patch_mask_fraction(torch.zeros(1, 8, 8, dtype=torch.bool), 0)


# ----------------------------------------------------------------------------- model input


def test_pixel_values_round_trip():
    images = torch.rand(3, 3, 64, 64)
    pixel_values = to_pixel_values(images)
    assert torch.allclose(pixel_values, images * 2 - 1)
    assert float(pixel_values.min()) >= -1 and float(pixel_values.max()) <= 1
    assert torch.allclose(to_images(pixel_values), images, atol=1e-6)


def _processor_input(images):
    """The images as a list of ``uint8`` ``(H, W, 3)`` arrays, and as floats of those values."""
    quantised = (images * 255).round().to(torch.uint8)
    arrays = [image.permute(1, 2, 0).numpy() for image in quantised]
    return arrays, quantised.float() / 255


def test_image_processor_agrees_with_to_pixel_values():
    from PIL import Image

    arrays, images = _processor_input(make_texture_dataset(4, seed=0).images)
    processor = texture_image_processor()
    from_numpy = processor(images=arrays, return_tensors="pt")["pixel_values"]
    from_pil = processor(images=[Image.fromarray(a) for a in arrays], return_tensors="pt")["pixel_values"]
    assert from_numpy.shape == (4, 3, 64, 64)
    assert torch.allclose(from_numpy, to_pixel_values(images), atol=1e-6)
    assert torch.allclose(from_pil, from_numpy)


def test_texture_vit_config():
    config = texture_vit_config()
    assert config.patch_size == 8 and config.image_size == 64
    assert (config.image_size // config.patch_size) ** 2 == 64  # 8 x 8 patches (+ [CLS])
    assert config._attn_implementation == "eager"
    assert config.id2label == dict(enumerate(CLASS_NAMES)) and config.num_labels == 5
    assert config.hidden_dropout_prob == 0.0 and config.attention_probs_dropout_prob == 0.0
    assert texture_vit_config(2, 32).num_labels == 2
    with pytest.raises(ValueError, match="multiple of 8"):
        texture_vit_config(image_size=60)
    with pytest.raises(ValueError, match="num_labels"):
        texture_vit_config(0)


def test_train_texture_vit_runs_and_is_reproducible():
    data = make_texture_dataset(32, seed=0, classes=("red", "striped"))
    models = [train_texture_vit(data, epochs=1, batch_size=16, progress=False) for _ in range(2)]
    assert not models[0].training and models[0].config.id2label == {0: "red", 1: "striped"}
    assert models[0].config._attn_implementation == "eager"
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)
    assert predict(models[0], data.images, batch_size=10).shape == (32,)
    with pytest.raises(ValueError, match="epochs and batch_size must be positive"):
        train_texture_vit(data, epochs=0)


# ----------------------------------------------------------------------------- the cached classifier


def test_saved_processor_feeds_the_model_like_to_pixel_values(texture_classifier):
    model, processor, _ = texture_classifier
    arrays, images = _processor_input(make_texture_dataset(6, seed=3).images)
    pixel_values = processor(images=arrays, return_tensors="pt")["pixel_values"]
    assert torch.allclose(pixel_values, to_pixel_values(images), atol=1e-6)
    with torch.no_grad():
        assert torch.allclose(
            model(pixel_values=pixel_values).logits, model(pixel_values=to_pixel_values(images)).logits, atol=1e-4
        )


def test_cached_classifier_loads_without_training(texture_classifier, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the cached texture classifier was trained again")

    monkeypatch.setattr(vision_model, "_train", fail)
    model, _, info = vision_model.load_texture_classifier(progress=False)
    assert info["name_or_path"] == texture_classifier[2]["name_or_path"]
    for a, b in zip(model.parameters(), texture_classifier[0].parameters()):
        assert torch.equal(a, b)
