"""Captum Insights: our methods next to Captum's, checked in-process and end to end in headless Chromium.

The ``insights`` tests run in the captum 0.8 environment (with the ``insights`` extra), the
``no_insights`` ones in the captum 0.9 environment (see conftest.py); scripts/test.sh runs both.
Screenshots of the browser runs are kept in ``$TEST_ARTIFACTS`` (default: ``test-artifacts/``).
"""

import base64
import io
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import torch

from captum_attn_shapley import AttentionReceived, AttnGradShapley, GradSAM
from captum_attn_shapley.demos.insights_app import embedded_visualizer
from captum_attn_shapley.demos.texture_vit import to_pixel_values
from captum_attn_shapley.visualization import patch_attributions_to_pixels
from captum_attn_shapley.visualization.insights import (
    INSIGHTS_HELP,
    InsightsUnavailableError,
    image_visualizer,
    insights_available,
    parse_layers,
    register_insights_methods,
    text_visualizer,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent
ARTIFACTS = pathlib.Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1200",
)
TEXTS = ["the flight was late and the crew was rude", "thanks for the lovely and friendly service"]


def _settings(method, arguments):
    return {"attribution_method": method, "arguments": dict(arguments), "prediction": "all", "classes": []}


def _outputs(visualizer, method, arguments):
    from captum.insights.attr_vis.server import namedtuple_to_dict

    visualizer._update_config(_settings(method, arguments))  # what the page's Fetch button posts
    return namedtuple_to_dict(visualizer.visualize())


def _direct(method, model, ids, target, **kwargs):
    """Our attribution computed directly on the token ids, as Insights normalises it (max |.| = 100)."""
    attr = method.attribute(ids, target=target, **kwargs)[0]
    return (100 * attr / attr.abs().max()).tolist()


# ----------------------------------------------------------------------------- any captum


def test_parse_layers_reads_the_insights_text_box():
    assert parse_layers("") is None and parse_layers("all") is None and parse_layers(None) is None
    assert parse_layers("0, 2 -1") == [0, 2, -1]
    assert parse_layers(3) == [3]
    assert parse_layers([1, 2]) == [1, 2]  # already parsed: Insights post-processes on every fetch
    with pytest.raises(ValueError, match="layer indices separated by spaces"):
        parse_layers("first")


# ----------------------------------------------------------------------------- captum >= 0.9


@pytest.mark.no_insights
def test_without_insights_every_entry_point_says_how_to_get_it(default_classifier):
    import captum

    model, tokenizer, _ = default_classifier
    assert not insights_available()
    calls = [
        register_insights_methods,
        lambda: text_visualizer(model, tokenizer, TEXTS, [0, 1]),
        lambda: image_visualizer(model, torch.rand(1, 3, 64, 64), [0], image_mean=[0.5] * 3, image_std=[0.5] * 3),
        lambda: embedded_visualizer("text"),
    ]
    for call in calls:
        with pytest.raises(InsightsUnavailableError) as err:
            call()
        message = str(err.value)
        assert f"captum {captum.__version__} has no `captum.insights`" in message
        assert 'pip install "captum-attn-shapley[insights]"' in message
        assert "--report report.html" in message and INSIGHTS_HELP in message
    assert issubclass(InsightsUnavailableError, ImportError)


@pytest.mark.no_insights
def test_without_insights_the_command_line_says_how_to_get_it(capsys):
    from captum_attn_shapley.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["insights", "--task", "image"])
    assert exit_info.value.code == 2  # a user error: two plain lines on stderr, no traceback
    message = capsys.readouterr().err
    assert message.startswith("captum-attn-shapley insights: error: captum")
    assert "captum-attn-shapley[insights]" in message
    assert "Traceback" not in message


# ----------------------------------------------------------------------------- captum 0.8


@pytest.mark.insights
def test_our_methods_are_listed_next_to_captums_with_their_options(default_classifier):
    model, tokenizer, _ = default_classifier
    assert insights_available()
    assert register_insights_methods() == ["AttnGradShapley", "Grad-SAM", "Att"]
    config = text_visualizer(model, tokenizer, TEXTS, [0, 1]).get_insights_config()
    assert {"Integrated Gradients", "Saliency", "AttnGradShapley", "Grad-SAM", "Att"} <= set(config["methods"])
    ours = config["method_arguments"]["AttnGradShapley"]
    assert ours["game"] == {"value": "cls", "limit": ["cls", "mutual", "max_mutual"], "type": "enum"}
    assert ours["weighting"]["type"] == "enum"
    assert set(ours["weighting"]["limit"]) == {"attention", "grad_attention", "lrp_attention", "ig_attention"}
    assert ours["layers"] == {"value": "", "type": "string"}
    assert set(config["method_arguments"]["Grad-SAM"]) == {"layers"} == set(config["method_arguments"]["Att"])
    assert config["classes"] == [model.config.id2label[i] for i in range(model.config.num_labels)]


@pytest.mark.insights
@pytest.mark.parametrize(
    "method, arguments",
    [
        ("AttnGradShapley", {"game": "cls", "weighting": "attention", "layers": ""}),
        ("AttnGradShapley", {"game": "max_mutual", "weighting": "grad_attention", "layers": "0 1"}),
        ("AttnGradShapley", {"game": "mutual", "weighting": "grad_attention", "layers": "-2"}),
        ("Grad-SAM", {"layers": "2, 3"}),
        ("Att", {"layers": ""}),
    ],
)
def test_text_results_equal_our_attributions_on_the_token_ids(default_classifier, method, arguments):
    model, tokenizer, _ = default_classifier
    labels = [0, 1]
    outputs = _outputs(text_visualizer(model, tokenizer, TEXTS, labels), method, arguments)
    assert len(outputs) == 4  # Insights shows four examples, cycling through the two
    special = tokenizer.all_special_ids
    for i, output in enumerate(outputs[:2]):
        (result,) = output
        ids = tokenizer([TEXTS[i]], return_tensors="pt")["input_ids"]
        with torch.no_grad():
            probs = torch.softmax(model(ids).logits, dim=1)[0]
        predicted = int(probs.argmax())
        feature = result["feature_outputs"][0]
        assert feature["base"] == tokenizer.convert_ids_to_tokens(ids[0])
        assert result["predicted"][0]["label"] == model.config.id2label[predicted]
        assert result["predicted"][0]["score"] == pytest.approx(float(probs[predicted]), abs=1e-5)
        assert result["actual"]["index"] == labels[i] and result["active_index"] == predicted
        layers = parse_layers(arguments["layers"])
        if method == "AttnGradShapley":
            explainer = AttnGradShapley(model, special_token_ids=special)
            expected = _direct(
                explainer,
                model,
                ids,
                predicted,
                layers=layers,
                game=arguments["game"],
                weighting=arguments["weighting"],
            )
        else:
            explainer = (GradSAM if method == "Grad-SAM" else AttentionReceived)(model, special_token_ids=special)
            expected = _direct(explainer, model, ids, predicted, layers=layers)
        np.testing.assert_allclose(feature["modified"], expected, atol=1e-3)
        assert feature["modified"][0] == 0 and feature["modified"][-1] == 0  # [CLS] and [SEP] are not players


@pytest.mark.insights
def test_captums_own_methods_still_run_in_the_same_visualizer(default_classifier):
    model, tokenizer, _ = default_classifier
    visualizer = text_visualizer(model, tokenizer, TEXTS, [0, 1])
    outputs = _outputs(visualizer, "Integrated Gradients", {"n_steps": 8, "method": "gausslegendre"})
    feature = outputs[0][0]["feature_outputs"][0]
    assert len(feature["modified"]) == len(feature["base"])
    assert max(abs(v) for v in feature["modified"]) == pytest.approx(100)
    ours = _outputs(
        visualizer, "AttnGradShapley", {"game": "max_mutual", "weighting": "grad_attention", "layers": ""}
    )
    shown = {tuple(o[0]["feature_outputs"][0]["base"]) for o in ours}
    assert shown == {tuple(o[0]["feature_outputs"][0]["base"]) for o in outputs} and len(shown) == 2


@pytest.mark.insights
def test_image_results_are_our_patch_maps_at_pixel_resolution(texture_classifier):
    from captum.insights.attr_vis.features import ImageFeature

    from captum_attn_shapley.demos import make_texture_dataset
    from captum_attn_shapley.visualization.insights import ImageLogitsForward, InsightsAttnGradShapley

    vit, processor, _ = texture_classifier
    data = make_texture_dataset(2, seed=3)
    forward = ImageLogitsForward(vit, processor.image_mean, processor.image_std)
    ours = InsightsAttnGradShapley(forward).attribute(data.images, game="cls", layers="0 1")
    patches = AttnGradShapley(vit, game="cls").attribute(to_pixel_values(data.images), layers=[0, 1])
    assert ours.shape == data.images.shape
    expected = patch_attributions_to_pixels(patches, data.images).expand(-1, 3, -1, -1) / 3
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-5)

    outputs = _outputs(
        image_visualizer(vit, data.images, data.labels.tolist(), processor=processor),
        "AttnGradShapley",
        {"game": "cls", "weighting": "grad_attention", "layers": "0 1"},
    )
    feature = outputs[0][0]["feature_outputs"][0]
    assert feature["type"] == "image"
    target = outputs[0][0]["active_index"]
    direct = AttnGradShapley(vit, game="cls").attribute(
        to_pixel_values(data.images[:1]), target=target, layers=[0, 1]
    )
    pixels = patch_attributions_to_pixels(direct, data.images[:1]).expand(-1, 3, -1, -1) / 3
    reference = ImageFeature("Image", None, None).visualize(pixels, data.images[:1], 1.0)
    assert _png(feature["modified"]).shape == _png(reference.modified).shape
    assert np.abs(_png(feature["modified"]).astype(int) - _png(reference.modified).astype(int)).mean() < 1


@pytest.mark.insights
def test_insights_input_errors_are_clear(default_classifier, texture_classifier):
    model, tokenizer, _ = default_classifier
    vit, _, _ = texture_classifier
    with pytest.raises(ValueError, match="No texts given"):
        text_visualizer(model, tokenizer, [], [])
    with pytest.raises(ValueError, match="one label per example"):
        text_visualizer(model, tokenizer, TEXTS, labels=[0])
    with pytest.raises(ValueError, match="leaves out examples without a label"):
        text_visualizer(model, tokenizer, TEXTS, labels=None)  # Insights would wait for ever
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\)"):
        text_visualizer(model, tokenizer, TEXTS, labels=[0, 2])
    with pytest.raises(ValueError, match="normalisation"):
        image_visualizer(vit, torch.rand(1, 3, 64, 64), [0])
    with pytest.raises(ValueError, match=r"\(n, 3, H, W\)"):
        image_visualizer(vit, torch.rand(3, 64, 64), [0], image_mean=[0.5] * 3, image_std=[0.5] * 3)
    with pytest.raises(ValueError, match="Unknown task"):
        embedded_visualizer("audio")
    visualizer = text_visualizer(model, tokenizer, TEXTS, [0, 1])
    with pytest.raises(ValueError, match="Cannot read layers 'last'"):
        _outputs(visualizer, "Grad-SAM", {"layers": "last"})


# ----------------------------------------------------------------------------- in the browser


def _png(data):
    from PIL import Image

    raw = base64.b64decode(data.split(",", 1)[-1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """The Insights server of an embedded demo, in a subprocess (its Flask thread never stops)."""

    def __init__(self, task):
        self.port = _free_port()
        self.log = ARTIFACTS / f"insights_{task}_server.log"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "captum_attn_shapley.cli",
            "insights",
            "--task",
            task,
            "--port",
            str(self.port),
        ]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 180
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Insights server exited: {self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{self.url}init", timeout=5).read()
                return
            except OSError:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"the Insights server did not answer: {self.log.read_text()[-3000:]}")
                time.sleep(0.5)

    @property
    def url(self):
        return f"http://localhost:{self.port}/"

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _chromium():
    from selenium import webdriver

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        raise RuntimeError(
            "Debian's chromium and chromedriver are needed: apt-get update && apt-get install -y chromium "
            "chromium-driver (scripts/test.sh installs them)."
        )
    options = webdriver.ChromeOptions()
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.binary_location = browser
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def _run_in_page(task, method, arguments, wait_for, screenshot):
    """Opens the served page, picks the method and its arguments in the form, presses Fetch."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    server = _Server(task)
    browser = _chromium()
    try:
        browser.get(server.url)
        WebDriverWait(browser, 60).until(
            lambda b: (
                method
                in [
                    o.get_attribute("value")
                    for o in b.find_elements(By.CSS_SELECTOR, "select[name=selected_method] option")
                ]
            )
        )
        Select(browser.find_element(By.CSS_SELECTOR, "select[name=selected_method]")).select_by_value(method)
        for name, value in arguments.items():
            field = browser.find_element(By.CSS_SELECTOR, f"[name={name}]")
            if field.tag_name == "select":
                Select(field).select_by_value(value)
            else:
                field.clear()
                field.send_keys(value)
        browser.find_element(By.XPATH, "//button[contains(., 'Fetch')]").click()
        WebDriverWait(browser, 300).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, wait_for)) >= 4)
        time.sleep(0.5)
        browser.save_screenshot(str(ARTIFACTS / screenshot))
        return browser.execute_script(_READ_PAGE)
    finally:
        browser.quit()
        server.stop()


#: What the page shows: per example, the tokens with their scores, or the two images.
_READ_PAGE = """
const words = [...document.querySelectorAll('[class*=text-feature-word]')];
const examples = [...document.querySelectorAll('[class*=panel__column--stretch]')].map(column => ({
  tokens: [...column.querySelectorAll('[class*=text-feature-word]')].map(w => w.childNodes[0].textContent),
  scores: [...column.querySelectorAll('[class*=text-feature-word]')].map(
      w => parseFloat(w.querySelector('[class*=tooltip__label]').textContent)),
  original: [...column.querySelectorAll('img[alt=original]')].map(i => i.src),
  attribution: [...column.querySelectorAll('img[alt=attribution]')].map(i => i.src),
}));
return {examples: examples, words: words.length, fetched: document.body.innerText};
"""


@pytest.mark.insights
def test_browser_runs_attngradshapley_on_text_through_the_ui(default_classifier):
    from captum_attn_shapley.demos import load_tweets

    model, tokenizer, _ = default_classifier
    arguments = {"game": "cls", "weighting": "attention", "layers": "0 1"}
    page = _run_in_page("text", "AttnGradShapley", arguments, "[class*=text-feature-word]", "insights_text.png")
    tweets = load_tweets("test", n_per_class=2, seed=0)
    examples = [e for e in page["examples"] if e["tokens"]]
    assert len(examples) == 4
    explainer = AttnGradShapley(model, special_token_ids=tokenizer.all_special_ids)
    for shown, text in zip(examples, tweets.texts[:4]):
        ids = tokenizer([text], return_tensors="pt", truncation=True, max_length=128)["input_ids"]
        assert shown["tokens"] == tokenizer.convert_ids_to_tokens(ids[0])
        with torch.no_grad():
            predicted = int(model(ids).logits.argmax())
        expected = _direct(explainer, model, ids, predicted, game="cls", weighting="attention", layers=[0, 1])
        np.testing.assert_allclose(shown["scores"], expected, atol=2e-3)  # the page rounds to 3 decimals
        wrong = _direct(explainer, model, ids, predicted, game="max_mutual", weighting="attention", layers=[0, 1])
        assert np.abs(np.array(shown["scores"]) - np.array(wrong)).max() > 1  # the options did reach the method
    assert (ARTIFACTS / "insights_text.png").stat().st_size > 10_000


@pytest.mark.insights
def test_browser_runs_grad_sam_on_images_through_the_ui(texture_classifier):
    from captum.insights.attr_vis.features import ImageFeature

    from captum_attn_shapley.demos import make_texture_dataset

    vit, _, _ = texture_classifier
    page = _run_in_page("image", "Grad-SAM", {"layers": "1"}, "img[alt=attribution]", "insights_image.png")
    examples = [e for e in page["examples"] if e["attribution"]]
    assert len(examples) == 4
    data = make_texture_dataset(4, seed=0)
    feature = ImageFeature("Image", None, None)
    pixel_values = to_pixel_values(data.images)
    with torch.no_grad():
        predicted = vit(pixel_values=pixel_values).logits.argmax(dim=1)
    for i, shown in enumerate(examples):
        image = data.images[i : i + 1]
        maps = {
            name: method(vit).attribute(pixel_values[i : i + 1], target=int(predicted[i]), layers=[1])
            for name, method in (("Grad-SAM", GradSAM), ("Att", AttentionReceived))
        }
        drawn = {
            name: feature.visualize(patch_attributions_to_pixels(m, image).expand(-1, 3, -1, -1) / 3, image, 1.0)
            for name, m in maps.items()
        }
        assert np.array_equal(_png(shown["original"][0]), _png(drawn["Grad-SAM"].base))
        page_map = _png(shown["attribution"][0]).astype(int)
        error = np.abs(page_map - _png(drawn["Grad-SAM"].modified)).mean()
        assert error < 1
        assert np.abs(page_map - _png(drawn["Att"].modified)).mean() > 3 * max(error, 0.1)
    assert (ARTIFACTS / "insights_image.png").stat().st_size > 10_000
