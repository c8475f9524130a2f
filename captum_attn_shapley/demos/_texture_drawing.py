"""The drawing of the texture images: backgrounds, object shapes, fillings and pixel noise.

The building blocks of :mod:`~captum_attn_shapley.demos.textures` (which re-exports the constants
below). Geometry is given for :data:`IMAGE_SIZE` (64 px) and scaled with the image size; every draw
comes from the ``numpy.random.Generator`` passed in, and no global random state is touched.
"""

import colorsys
import functools
from typing import Any, Dict, Tuple, cast

import numpy as np
from numpy.typing import NDArray

#: Side of the images in pixels (an 8 x 8 grid of 8-pixel patches).
IMAGE_SIZE = 64
#: Texture concepts (the fillings of the three texture classes).
TEXTURE_CONCEPTS: Tuple[str, ...] = ("striped", "dotted", "zigzag")
#: Background textures: names of grayscale CC0 images of :mod:`skimage.data`.
BACKGROUNDS: Tuple[str, ...] = ("brick", "grass", "gravel")
#: RGB colours (in [0, 1]) of object fillings; textured objects use two distinct ones.
PALETTE: Dict[str, Tuple[float, float, float]] = {
    "red": (0.86, 0.10, 0.10),
    "blue": (0.10, 0.22, 0.86),
    "green": (0.10, 0.62, 0.18),
    "yellow": (0.95, 0.85, 0.10),
    "white": (0.95, 0.95, 0.95),
    "black": (0.06, 0.06, 0.06),
}
#: Half-width of the uniform per-channel jitter of a filling colour.
COLOUR_JITTER = 0.04
#: Standard deviation of the Gaussian pixel noise added everywhere.
NOISE_STD = 0.025
#: Range of the fraction of the image covered by an object.
OBJECT_FRACTION = (0.20, 0.45)

_SHAPES = ("ellipse", "rectangle", "triangle", "blob")
_PALETTE_NAMES = tuple(PALETTE)
_PALETTE_RGB = np.array([PALETTE[name] for name in _PALETTE_NAMES], dtype=np.float32)
_BACKGROUND_DOWNSCALE = (2.0, 3.0)  # at IMAGE_SIZE: the 512 px textures shrunk 2x or 3x
_MARGIN = 1  # pixels kept free between an object and the image border


@functools.lru_cache(maxsize=8)
def _background_sources(image_size: int) -> Tuple[NDArray[Any], ...]:
    """The background textures as float32 in [0, 1], rescaled for ``image_size`` (cached)."""
    import skimage.data
    from skimage.transform import rescale

    sources = []
    for name in BACKGROUNDS:
        gray = getattr(skimage.data, name)().astype(np.float32) / 255.0
        for factor in _BACKGROUND_DOWNSCALE:
            scale = image_size / (IMAGE_SIZE * factor)
            sources.append(rescale(gray, scale, anti_aliasing=scale < 1, order=1).astype(np.float32))
    return tuple(sources)


@functools.lru_cache(maxsize=1)
def _sample_photos() -> Tuple[NDArray[Any], ...]:
    """scikit-learn's two sample photographs (china, flower) as float32 RGB in [0, 1]."""
    from sklearn.datasets import load_sample_images

    return tuple(image.astype(np.float32) / 255.0 for image in load_sample_images().images)


@functools.lru_cache(maxsize=8)
def _grid(image_size: int) -> Tuple[NDArray[Any], NDArray[Any]]:
    rows, cols = np.mgrid[0:image_size, 0:image_size].astype(np.float32)
    return rows, cols


def _random_crop(source: NDArray[Any], size: int, rng: np.random.Generator) -> NDArray[Any]:
    top = int(rng.integers(0, source.shape[0] - size + 1))
    left = int(rng.integers(0, source.shape[1] - size + 1))
    crop = source[top : top + size, left : left + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop.swapaxes(0, 1)
    return crop


def draw_background(size: int, rng: np.random.Generator) -> NDArray[Any]:
    """A tinted, low-contrast crop of a background texture, ``(3, size, size)``."""
    sources = _background_sources(size)
    crop = _random_crop(sources[int(rng.integers(len(sources)))], size, rng)
    gray = (crop - crop.mean()) / (crop.std() + 1e-6)
    contrast = rng.uniform(0.08, 0.16)
    # a muted colour: low saturation, mid value (never a palette colour)
    tint = np.array(
        colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.08, 0.3), rng.uniform(0.35, 0.65)), dtype=np.float32
    )
    return cast(NDArray[Any], tint[:, None, None] * (1.0 + contrast * gray[None]))


def _colour(index: int, rng: np.random.Generator) -> NDArray[Any]:
    jitter = rng.uniform(-COLOUR_JITTER, COLOUR_JITTER, size=3).astype(np.float32)
    return cast(NDArray[Any], np.clip(_PALETTE_RGB[index] + jitter, 0.0, 1.0))


def _two_colours(rng: np.random.Generator) -> Tuple[NDArray[Any], NDArray[Any]]:
    first, second = rng.choice(len(_PALETTE_NAMES), size=2, replace=False)
    return _colour(int(first), rng), _colour(int(second), rng)


def _rotated(size: int, rng: np.random.Generator) -> Tuple[NDArray[Any], NDArray[Any]]:
    """Image coordinates rotated by a random angle and shifted by a random offset."""
    rows, cols = _grid(size)
    angle = rng.uniform(0.0, np.pi)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = cols * cos + rows * sin + np.float32(rng.uniform(0, 100))
    v = rows * cos - cols * sin + np.float32(rng.uniform(0, 100))
    return u, v


def _pattern(texture: str, size: int, rng: np.random.Generator) -> NDArray[Any]:
    """Bool ``(size, size)`` map of the foreground colour of a texture filling."""
    scale = size / IMAGE_SIZE
    u, v = _rotated(size, rng)
    if texture == "striped":
        period = rng.uniform(6.0, 10.0) * scale
        return np.mod(u, period) < period / 2
    if texture == "zigzag":
        period = rng.uniform(7.0, 10.0) * scale  # distance between lines
        wavelength = rng.uniform(7.0, 11.0) * scale
        amplitude = rng.uniform(3.0, 4.5) * scale  # sharp bends: slopes of 1.1 to 2.6
        phase = u / wavelength
        triangle = 4.0 * np.abs(phase - np.floor(phase + 0.5)) - 1.0  # in [-1, 1]
        return cast(NDArray[Any], np.mod(v - amplitude * triangle, period) < rng.uniform(0.4, 0.5) * period)
    if texture == "dotted":
        spacing = rng.uniform(6.0, 9.0) * scale
        radius = rng.uniform(1.5, min(2.5, 0.3 * spacing / scale)) * scale  # dots stay apart
        cell_u, cell_v = np.floor(u / spacing), np.floor(v / spacing)
        iu, iv = (cell_u - cell_u.min()).astype(np.intp), (cell_v - cell_v.min()).astype(np.intp)
        reach = max(0.0, spacing / 2 - radius - 0.25 * scale)  # dots stay inside their cell
        jitter = rng.uniform(-reach, reach, size=(int(iu.max()) + 1, int(iv.max()) + 1, 2))
        du = u - (cell_u + 0.5) * spacing - jitter[iu, iv, 0]
        dv = v - (cell_v + 0.5) * spacing - jitter[iu, iv, 1]
        return cast(NDArray[Any], du * du + dv * dv < radius * radius)
    raise AssertionError(texture)


def draw_filling(kind: str, size: int, rng: np.random.Generator) -> NDArray[Any]:
    """The filling of class or concept ``kind`` over the whole image, ``(3, size, size)``."""
    if kind in TEXTURE_CONCEPTS:
        foreground, background = _two_colours(rng)
        pattern = _pattern(kind, size, rng)
        return np.where(pattern[None], foreground[:, None, None], background[:, None, None])
    colour = _colour(_PALETTE_NAMES.index(kind), rng)
    return np.broadcast_to(colour[:, None, None], (3, size, size))


def _shape_outline(rng: np.random.Generator) -> NDArray[Any]:
    """Vertices ``(k, 2)`` (row, col) of a random rotated shape of unit area.

    The shape is star-shaped about the origin (the vertices go round it once), which
    :func:`_rasterise` relies on.
    """
    kind = _SHAPES[int(rng.integers(len(_SHAPES)))]
    if kind in ("ellipse", "blob"):
        angles = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
        radius = np.ones_like(angles)
        if kind == "blob":
            for k in (2, 3, 4):
                radius += rng.uniform(-0.13, 0.13) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
        else:
            aspect = rng.uniform(0.65, 1.5)
            radius = 1.0 / np.sqrt((np.cos(angles) / aspect) ** 2 + (np.sin(angles) * aspect) ** 2)
        points = np.stack([radius * np.sin(angles), radius * np.cos(angles)], axis=1)
    elif kind == "rectangle":
        aspect = rng.uniform(0.65, 1.5)
        points = np.array([[-1, -aspect], [-1, aspect], [1, aspect], [1, -aspect]], dtype=np.float64)
    else:  # a triangle whose circumcentre (the origin) is inside: no angle above 77 degrees
        angles = np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.3, 0.3, size=3)
        points = np.stack([np.sin(angles), np.cos(angles)], axis=1)
    turn = rng.uniform(0.0, 2 * np.pi)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    points = points @ rotation.T
    rows, cols = points[:, 0], points[:, 1]
    area = 0.5 * abs(np.dot(cols, np.roll(rows, 1)) - np.dot(rows, np.roll(cols, 1)))
    return cast(NDArray[Any], points / np.sqrt(area))


def _rasterise(outline: NDArray[Any], centre: NDArray[Any], size: int) -> NDArray[Any]:
    """Bool mask of the pixels inside a polygon that is star-shaped about ``centre``.

    Each pixel's ray from the centre meets the boundary on one edge, found by its angle; the
    pixel is inside if it lies before that crossing.
    """
    vertex_angle = np.arctan2(outline[:, 0], outline[:, 1])
    order = np.argsort(vertex_angle)
    vertices, vertex_angle = outline[order], vertex_angle[order]
    rows, cols = _grid(size)
    d_row, d_col = rows - centre[0], cols - centre[1]
    edge = np.searchsorted(vertex_angle, np.arctan2(d_row, d_col)) - 1  # -1 wraps round
    start, end = vertices[edge], vertices[(edge + 1) % len(vertices)]
    e_row, e_col = end[..., 0] - start[..., 0], end[..., 1] - start[..., 1]
    # pixel = t * boundary point on the same ray: inside iff t >= 1 (cross products, no division)
    boundary = start[..., 1] * e_row - start[..., 0] * e_col
    pixel = d_col * e_row - d_row * e_col
    return cast(NDArray[Any], pixel <= boundary)


def draw_object_mask(size: int, rng: np.random.Generator) -> NDArray[Any]:
    """Bool mask of a random shape covering 20-45 % of the image, fully inside it."""
    low, high = OBJECT_FRACTION
    while True:
        outline = _shape_outline(rng) * np.sqrt(rng.uniform(low + 0.03, high - 0.03) * size * size)
        lowest, highest = outline.min(axis=0), outline.max(axis=0)
        room = (size - 1 - 2 * _MARGIN) - (highest - lowest)
        if (room < 0).any():
            continue  # too large for the image at this angle: draw again
        centre = _MARGIN - lowest + rng.uniform(0.0, 1.0, size=2) * room
        mask = _rasterise(outline, centre, size)
        border = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
        if low <= mask.mean() <= high and not border:
            return mask


def finish_image(clean: NDArray[Any], noise: NDArray[Any]) -> NDArray[Any]:
    """``clean + noise`` clipped to ``[0, 1]``, as float32."""
    return cast(NDArray[Any], np.clip(clean + noise, 0.0, 1.0).astype(np.float32))


def draw_noise(size: int, rng: np.random.Generator) -> NDArray[Any]:
    """Gaussian pixel noise of standard deviation :data:`NOISE_STD`, ``(3, size, size)`` float32."""
    return rng.standard_normal(size=(3, size, size), dtype=np.float32) * np.float32(NOISE_STD)


def draw_random_image(size: int, rng: np.random.Generator) -> NDArray[Any]:
    """A background as in the dataset, or a rescaled random crop of a sample photograph.

    Nearly flat photograph crops (plain sky) are drawn again.
    """
    from skimage.transform import resize

    photos = _sample_photos()
    choice = int(rng.integers(len(BACKGROUNDS) + len(photos)))
    if choice < len(BACKGROUNDS):
        return draw_background(size, rng)
    photo = photos[choice - len(BACKGROUNDS)]
    while True:
        crop_size = int(rng.integers(size, max(size, min(photo.shape[:2]) // 2) + 1))
        crop = _random_crop(photo, crop_size, rng)
        if crop.std() >= 0.05:
            return cast(
                NDArray[Any],
                resize(crop, (size, size), order=1, anti_aliasing=crop_size > size).transpose(2, 0, 1),
            )
