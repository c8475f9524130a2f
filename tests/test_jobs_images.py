"""Dataset jobs on images (ViT/DeiT): the job's per-patch scores and predictions equal the methods and the
model called directly on each image alone (read with PIL, converted to RGB, through the saved image
processor); 1 and 2 local workers give bit-identical files; a folder of images gives the list file's job;
the fingerprint covers the images' bytes; bad input and unsupported methods fail before any work."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_models import tiny_image_model
from transformers import AutoModelForImageClassification, ViTImageProcessor

from captum_attn_shapley import AttentionReceived, AttnGradShapley, GradSAM
from captum_attn_shapley.attr import PAPER_VARIANTS
from captum_attn_shapley.cli import main
from captum_attn_shapley.jobs import JobSpec, explain_dataset, plan_shards

#: Dataset jobs need the ``jobs`` extra (pyarrow): scripts/test.sh runs them in the captum 0.9 environment only.
pytestmark = pytest.mark.jobs

SAMPLED = "Shapley-Grad-Att-Max-Mutual (permutation, 100)"
METHODS = ["Shapley-Grad-Att-Max-Mutual", "Shapley-Att-CLS", "Att", "Grad-SAM", SAMPLED]
# 10 images, 3 per batch, 6 per shard: shards of 6 and 4 images (batches of 3, 3 and 3, 1)
OPTIONS = dict(image_column="image", label_column="label", batch_size=3, shard_size=6, progress=False)
N_IMAGES = 10


def _read_table(path):
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _save_vit(path, arch="vit", seed=3):
    model = tiny_image_model(arch, seed=seed)
    model.save_pretrained(path)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    return _save_vit(tmp_path_factory.mktemp("tiny-vit"))


def _write_images(folder, n=N_IMAGES, seed=0):
    """Images of other sizes and modes than the model's (grey, RGBA, palette; PNG, BMP), sorted names."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        pixels = (rng.random((12 + 2 * i, 20 - i, 3)) * 255 * (0.3 + 0.07 * i)).astype("uint8")
        image = Image.fromarray(pixels)
        image = [image, image.convert("L"), image.convert("RGBA"), image.convert("P")][i % 4]
        name = f"img{i:02d}." + ("bmp" if i == 5 else "png")
        image.save(folder / name)
        names.append(name)
    return names


@pytest.fixture(scope="module")
def image_csv(tmp_path_factory):
    """images.csv beside imgs/: relative paths, and one absolute path."""
    root = tmp_path_factory.mktemp("data")
    names = _write_images(root / "imgs")
    with open(root / "images.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "label"])
        for i, name in enumerate(names):
            path = str(root / "imgs" / name) if i == 4 else f"imgs/{name}"
            writer.writerow([path, i % 3])
    return root / "images.csv"


@pytest.fixture(scope="module")
def one_worker(vit_dir, image_csv, tmp_path_factory):
    """The job run in this process: the reference of the other tests."""
    return explain_dataset(image_csv, tmp_path_factory.mktemp("job") / "out", str(vit_dir), METHODS, **OPTIONS)


def _direct_method(name, model):
    if name in PAPER_VARIANTS:
        game, weighting = PAPER_VARIANTS[name]
        return AttnGradShapley(model, game=game, weighting=weighting), {}
    if name == SAMPLED:
        return AttnGradShapley(model, game="max_mutual", weighting="grad_attention"), dict(
            estimator="permutation", n_samples=100
        )
    return {"Att": AttentionReceived, "Grad-SAM": GradSAM}[name](model), {}


def _check_against_direct(result, model_dir, paths, methods, batch_size):
    """Each image alone: PIL, RGB, the saved processor; the model's prediction; each method's patch scores."""
    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    processor = ViTImageProcessor.from_pretrained(model_dir)
    tokens = result.read_tokens().to_pydict()
    examples = result.read_examples().to_pydict()
    assert examples["example"] == list(range(len(paths)))
    for i, path in enumerate(paths):
        pixels = processor(images=[Image.open(path).convert("RGB")], return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            probs = model(pixel_values=pixels).logits.softmax(-1)[0]
        target = int(probs.argmax())
        assert examples["predicted"][i] == target
        assert examples["probability"][i] == pytest.approx(float(probs[target]), rel=1e-5)
        assert (examples["n_patches"][i], examples["rows"][i], examples["cols"][i]) == (16, 4, 4)
        rows = [r for r, e in enumerate(tokens["example"]) if e == i]
        assert [tokens["patch_index"][r] for r in rows] == list(range(16))
        assert [(tokens["row"][r], tokens["col"][r]) for r in rows] == [(p // 4, p % 4) for p in range(16)]
        for name in methods:
            method, kwargs = _direct_method(name, model)
            if "estimator" in kwargs:  # the estimator seeds example b of a call with seed + b
                kwargs["seed"] = i % batch_size
            expected = method.attribute(pixels, target=target, **kwargs)[0]  # (rows, cols)
            got = torch.tensor([tokens[name][r] for r in rows]).reshape(4, 4)
            torch.testing.assert_close(got, expected.detach().float(), rtol=1e-4, atol=1e-6)


def test_patch_scores_equal_the_methods_called_on_each_image(one_worker, vit_dir, image_csv):
    assert one_worker.computed == [0, 1] and one_worker.status.complete
    paths = sorted((image_csv.parent / "imgs").iterdir())
    _check_against_direct(one_worker, vit_dir, paths, METHODS, batch_size=3)
    examples = one_worker.read_examples().to_pydict()
    assert examples["label"] == [i % 3 for i in range(N_IMAGES)]
    assert examples["image"] == [f"imgs/{p.name}" for p in paths]  # the absolute one shown relative too
    assert "token" not in one_worker.read_tokens().column_names  # patches, not tokens


def test_two_local_workers_are_bit_identical_to_one(one_worker, vit_dir, image_csv, tmp_path):
    result = explain_dataset(image_csv, tmp_path / "out", str(vit_dir), METHODS, workers=2, **OPTIONS)
    assert sorted(result.computed) == [0, 1] and result.status.complete
    for kind in ("shard", "examples"):
        for index in range(2):
            name = f"{kind}-{index:05d}.parquet"
            assert _read_table(tmp_path / "out" / name).equals(_read_table(one_worker.out_dir / name)), name


def test_a_folder_of_images_gives_the_list_files_job(one_worker, vit_dir, image_csv, tmp_path):
    folder = image_csv.parent / "imgs"
    options = {k: v for k, v in OPTIONS.items() if k not in ("image_column", "label_column")}
    result = explain_dataset(folder, tmp_path / "out", str(vit_dir), METHODS, **options)
    assert result.spec.input_format == "folder" and result.spec.images
    assert result.read_tokens().equals(one_worker.read_tokens())
    examples = result.read_examples().to_pydict()
    assert examples["image"] == sorted(p.name for p in folder.iterdir())
    assert examples["predicted"] == one_worker.read_examples().to_pydict()["predicted"]
    assert JobSpec.from_json(result.spec.to_json()) == result.spec


def test_the_fingerprint_covers_the_images_bytes(one_worker, vit_dir, tmp_path):
    """Same list file, one image changed: the rerun refuses to mix; restored, nothing is recomputed."""
    import shutil

    data = tmp_path / "data"
    names = _write_images(data / "imgs")
    (data / "images.csv").write_text("image\n" + "".join(f"imgs/{n}\n" for n in names))
    options = dict(OPTIONS, label_column=None)
    out = tmp_path / "out"
    first = explain_dataset(data / "images.csv", out, str(vit_dir), ["Att"], **options)
    assert first.computed == [0, 1]
    spec = first.spec
    saved = tmp_path / "saved.png"
    shutil.copy(data / "imgs" / names[7], saved)
    Image.new("RGB", (16, 16), (200, 10, 10)).save(data / "imgs" / names[7])
    assert (
        spec.fingerprint_parts()["data"]
        != json.loads((out / "manifest.json").read_text())["fingerprint_parts"]["data"]
    )
    with pytest.raises(ValueError, match=r"another job \(different: data\)"):
        explain_dataset(data / "images.csv", out, str(vit_dir), ["Att"], **options)
    shutil.copy(saved, data / "imgs" / names[7])
    again = explain_dataset(data / "images.csv", out, str(vit_dir), ["Att"], **options)
    assert again.computed == [] and again.status.complete


def test_deit_distillation_token_is_not_a_player(tmp_path):
    model_dir = _save_vit(tmp_path / "deit", arch="deit", seed=5)
    names = _write_images(tmp_path / "imgs", n=4, seed=2)
    result = explain_dataset(
        tmp_path / "imgs",
        tmp_path / "out",
        str(model_dir),
        ["grad-att-max-mutual", "att"],
        batch_size=2,
        progress=False,
    )
    paths = [tmp_path / "imgs" / n for n in names]
    _check_against_direct(result, model_dir, paths, ["Shapley-Grad-Att-Max-Mutual", "Att"], batch_size=2)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(metrics=True), r"metrics=True is not supported for images"),
        (
            dict(methods=["att", "KernelShap", "LayerIntegratedGradients"]),
            r"methods \['KernelShap', 'LayerIntegratedGradients'\] do not score image patches",
        ),
        (dict(text_column="body"), r"text_column='body' was given to an image job"),
        (dict(concepts=True), r"concepts= \(a TokenTCAV job\) reads texts"),
        (dict(image_column="picture"), r"image_column 'picture' is not a column .*\['image', 'label'\]"),
        (dict(missing=True), r"row 1: the image 'imgs/gone.png' .* is not a file"),
        (dict(corrupt=True), r"image '.*broken.png' of input .* cannot be read"),
        (dict(model="text"), r"is not an image classifier"),
        (dict(model="no-processor"), r"has no image processor"),
        (dict(folder=True), r"label_column='label', but input .* is a folder of images"),
        (dict(empty_folder=True), r"holds no image files"),
    ],
)
def test_bad_input_fails_before_any_work(change, message, vit_dir, image_csv, tiny_bert_dir, tmp_path):
    change = dict(change)
    source, model = image_csv, str(vit_dir)
    if change.pop("concepts", False):
        concepts = tmp_path / "concepts.json"
        concepts.write_text(json.dumps({"concepts": {"a": ["x"], "b": ["y"]}, "sets": [["a", "b"]]}))
        change.update(concepts=str(concepts), layers=[0])
    missing, corrupt = change.pop("missing", False), change.pop("corrupt", False)
    if missing or corrupt:  # the second row: a file that is not there, or not an image
        name = "gone.png" if missing else "broken.png"
        source = tmp_path / "images.csv"
        (tmp_path / "imgs").mkdir()
        (tmp_path / "imgs" / "img00.png").write_bytes((image_csv.parent / "imgs" / "img00.png").read_bytes())
        if corrupt:
            (tmp_path / "imgs" / name).write_bytes(b"not a PNG at all")
        source.write_text(f"image,label\nimgs/img00.png,0\nimgs/{name},1\n")
    if change.get("model") == "text":
        model = str(tiny_bert_dir)
    elif change.get("model") == "no-processor":
        model = str(tmp_path / "bare")
        tiny_image_model("vit").save_pretrained(model)
    change.pop("model", None)
    if change.pop("folder", False):
        source = image_csv.parent / "imgs"
        change.update(image_column=None)
    if change.pop("empty_folder", False):
        source = tmp_path / "empty"
        source.mkdir()
        (source / "notes.txt").write_text("no images here")
        change.update(image_column=None, label_column=None)
    kwargs = {**OPTIONS, "methods": METHODS, **change}
    with pytest.raises(ValueError, match=message):
        explain_dataset(source, tmp_path / "out", model, **kwargs)
    assert not (tmp_path / "out").exists()


def _user_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_cli_image_column_end_to_end(one_worker, vit_dir, image_csv, tmp_path, capsys):
    out = tmp_path / "job"
    argv = ["explain-dataset", str(image_csv), "--image-column", "image", "--out", str(out)]
    argv += ["--model", str(vit_dir), "--methods", "att", "grad-sam", "--batch-size", "3", "--shard-size", "6"]
    argv += ["--label-column", "label", "--no-progress"]
    assert main(argv) == 0
    assert "2/2 shards, 10/10 examples" in capsys.readouterr().out
    spec = JobSpec.from_json(json.dumps(json.loads((out / "manifest.json").read_text())["spec"]))
    assert [(s.start, s.stop) for s in plan_shards(spec)] == [(0, 6), (6, 10)]
    mine, reference = (
        _read_table(out / "shard-00001.parquet"),
        _read_table(one_worker.out_dir / "shard-00001.parquet"),
    )
    for column in ("example", "patch_index", "row", "col", "Att", "Grad-SAM"):
        assert mine.column(column).equals(reference.column(column)), column
    assert _read_table(out / "examples-00000.parquet").equals(
        _read_table(one_worker.out_dir / "examples-00000.parquet")
    )
    err = _user_error(argv + ["--text-column", "text"], capsys)
    assert "--text-column and --image-column were both given" in err
    err = _user_error(argv[:6] + ["--methods", "att", "--no-progress"], capsys)
    assert "Images need an image classifier" in err
    err = _user_error(argv + ["--metrics", "--overwrite"], capsys)
    assert "metrics=True is not supported for images" in err
    err = _user_error(argv + ["--methods", "kernelshap"], capsys)
    assert "methods ['KernelShap'] do not score image patches" in err
