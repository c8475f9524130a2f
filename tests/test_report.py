"""The self-contained HTML reports: no external resources, valid embedded PNGs, colours that follow the
scores, metrics equal to faithfulness.py's, TCAV tables equal to the scores, and the command-line program."""

import base64
import csv
import io
import json
import re
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from test_plots_tcav import hand_made_scores  # noqa: E402
from tiny_models import tiny_image_model  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from captum_attn_shapley import AttnGradShapley, TokenTCAV, image_concept  # noqa: E402
from captum_attn_shapley.capture import text_player_mask  # noqa: E402
from captum_attn_shapley.cli import main  # noqa: E402
from captum_attn_shapley.demos import load_text_dataset  # noqa: E402
from captum_attn_shapley.demos.datasets import select_view  # noqa: E402
from captum_attn_shapley.evaluation import classifier_forward  # noqa: E402
from captum_attn_shapley.metrics import comprehensiveness, sufficiency, sufficiency_predictions  # noqa: E402
from captum_attn_shapley.visualization import (  # noqa: E402
    attribution_report,
    image_examples,
    tcav_heatmap_examples,
    tcav_report,
    text_examples,
    write_report,
)

TEXTS = ["the flight was late and the crew was rude", "great crew <b>&amp; thanks</b>"]
LABELS = [0, 1]


# ------------------------------------------------------------------------------------------ helpers


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these small forward passes are several times slower with two threads when the
    cores are busy with other work. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class _Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.parts = []

    @property
    def classes(self):
        return (self.attrs.get("class") or "").split()

    def text(self):
        return "".join(p if isinstance(p, str) else p.text() for p in self.parts)

    def find(self, tag=None, cls=None, **attrs):
        found = []
        for part in self.parts:
            if isinstance(part, str):
                continue
            if (
                (tag is None or part.tag == tag)
                and (cls is None or cls in part.classes)
                and all(part.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
            ):
                found.append(part)
            found += part.find(tag, cls, **attrs)
        return found


class _Dom(HTMLParser):
    """A small DOM; records unbalanced tags."""

    VOID = {"meta", "img", "br", "hr", "input", "link", "col", "source"}

    def __init__(self, page):
        super().__init__(convert_charrefs=True)
        self.root = _Node("#root", {}, None)
        self.current = self.root
        self.errors = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        node = _Node(tag, attrs, self.current)
        self.current.parts.append(node)
        if tag not in self.VOID:
            self.current = node

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if self.current.tag != tag:
            self.errors.append(f"</{tag}> closes <{self.current.tag}>")
            return
        self.current = self.current.parent

    def handle_data(self, data):
        self.current.parts.append(data)


def _png(src):
    assert src.startswith("data:image/png;base64,"), src[:60]
    data = base64.b64decode(src.split(",", 1)[1], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as image:
        image.verify()
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.width > 0 and image.height > 0
    return np.asarray(image.convert("RGB")).astype(int)


def _self_contained(page):
    """The page references nothing outside itself, parses with balanced tags, and every image decodes."""
    lowered = page.lower()
    for banned in (
        "http://",
        "https://",
        'src="//',
        "src='//",
        "<script",
        "url(",
        "@import",
        "<link",
        "<iframe",
        "<object",
        "<embed",
    ):
        assert banned not in lowered, banned
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    dom = _Dom(page)
    assert not dom.errors and dom.current is dom.root, dom.errors[:5]
    images = dom.root.find("img")
    for img in images:
        _png(img.attrs["src"])
    assert len(images) == lowered.count("<img")
    return dom


def _rgb(style):
    match = re.search(r"background:rgb\((\d+),(\d+),(\d+)\)", style)
    assert match, style
    return tuple(int(v) for v in match.groups())


def _check_highlights(section, method, tokens, scores, players):
    """The spans of one method: tokens, exact scores, hue from the sign, strength growing with |score|."""
    rows = section.find("tr", "method", data_method=method)
    assert len(rows) == 1, method
    spans = rows[0].find("span", "tok")
    assert [s.text() for s in spans] == tokens
    shown = [s for s in spans if "off" not in s.classes]
    assert ["off" not in s.classes for s in spans] == list(players)
    expected = [float(v) for v, p in zip(scores, players) if p]
    values = [float(s.attrs["data-score"]) for s in shown]
    assert np.allclose(values, expected, rtol=0, atol=1e-12)
    colours = [_rgb(s.attrs["style"]) for s in shown]
    strength = [255 - min(c) for c in colours]
    vmax = max(abs(v) for v in values)
    for value, (r, g, b) in zip(values, colours):
        assert g == min(r, g, b)
        if value > 1e-3 * vmax:
            assert r == 255 and b < 255  # red for positive
        elif value < -1e-3 * vmax:
            assert b == 255 and r < 255  # blue for negative
        assert abs((255 - min(r, g, b)) / 255 - abs(value) / vmax) < 0.02  # strength proportional to |score|
    top = int(np.argmax(np.abs(values)))
    assert strength[top] == max(strength) and min(colours[top]) == 0
    order = np.argsort(np.abs(values), kind="stable")
    assert all(strength[order[i]] <= strength[order[i + 1]] + 1 for i in range(len(order) - 1))
    legend = rows[0].find("span", "legend")[0]
    assert float(legend.attrs["data-vmax"]) == pytest.approx(vmax, rel=1e-12)


def _metric_cells(section):
    return {
        (td.attrs["data-method"], td.attrs["data-metric"]): td
        for td in section.find("td")
        if "data-metric" in td.attrs
    }


# ------------------------------------------------------------------------------------------ text and images


def test_text_report_shows_the_scores_prediction_and_metrics(default_classifier, tmp_path):
    model, tokenizer, _ = default_classifier
    enc = tokenizer(TEXTS, return_tensors="pt", padding=True)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    forward = classifier_forward(model)
    players = text_player_mask(ids, mask, tokenizer.all_special_ids)
    attr = AttnGradShapley(model, special_token_ids=tokenizer.all_special_ids).attribute(
        ids, additional_forward_args=(mask,)
    )
    centred = (attr - attr.sum(1, keepdim=True) / players.sum(1, keepdim=True)) * players  # both signs
    methods = {"Shapley-Grad-Att-Max-Mutual": attr, "centred <script>x</script>": centred}
    examples = text_examples(
        forward, ids, methods, tokenizer, additional_forward_args=(mask,), labels=LABELS, texts=TEXTS
    )
    figure = plt.figure()
    plt.plot([0, 1], [1, 0])
    page = attribution_report(
        examples,
        title="Report <i>",
        model_name="sentiment <model>",
        settings={"bins": [0, 10, 20, 50], "note": "a < b"},
        figures={"a line": figure},
    )
    path = write_report(tmp_path / "sub" / "report.html", page)
    assert path.read_text(encoding="utf-8") == page
    dom = _self_contained(page)
    assert len(dom.root.find("img")) == 1
    # escaping of every text taken from the data
    assert "centred &lt;script&gt;x&lt;/script&gt;" in page and "Report &lt;i&gt;" in page
    assert "sentiment &lt;model&gt;" in page and "a &lt; b" in page
    assert "great crew &lt;b&gt;&amp;amp; thanks&lt;/b&gt;" in page

    with torch.no_grad():
        probs = torch.softmax(forward(ids, mask).double(), dim=1)
    id2label = model.config.id2label
    sections = dom.root.find("section", "example")
    assert len(sections) == 2
    for b, section in enumerate(sections):
        predicted = int(probs[b].argmax())
        assert section.find("b", "predicted")[0].text() == id2label[predicted]
        assert f"(p = {float(probs[b, predicted]):.3f})" in section.find("p", "prediction")[0].text()
        assert section.find("b", "true-label")[0].text() == id2label[LABELS[b]]
        real = mask[b].bool()
        tokens = tokenizer.convert_ids_to_tokens(ids[b][real].tolist())
        for name, scores in methods.items():
            _check_highlights(section, name, tokens, scores[b][real].tolist(), players[b][real].tolist())
        cells = _metric_cells(section)
        for name, scores in methods.items():
            common = dict(additional_forward_args=(mask,), tokenizer=tokenizer)
            comp = comprehensiveness(forward, ids, scores, **common)[b]
            suff = sufficiency(forward, ids, scores, **common)[b]
            kept = sufficiency_predictions(forward, ids, scores, k=20, **common)[b]
            shown = float(cells[name, "comprehensiveness"].attrs["data-value"])
            assert shown == pytest.approx(float(comp), abs=1e-9)
            assert cells[name, "comprehensiveness"].text() == f"{float(comp):.4f}"
            assert float(cells[name, "sufficiency"].attrs["data-value"]) == pytest.approx(float(suff), abs=1e-9)
            assert cells[name, "prediction_at_20"].text().startswith(id2label[int(kept)])
    # the centred method has both signs, so both hues appear
    colours = {
        _rgb(s.attrs["style"])[::2]
        for s in sections[0].find("tr", "method")[1].find("span", "tok")
        if "off" not in s.classes
    }
    assert any(r == 255 and b < 255 for r, b in colours) and any(b == 255 and r < 255 for r, b in colours)


def test_image_report_overlays_follow_the_patch_scores(texture_classifier):
    from captum_attn_shapley.demos import make_texture_dataset
    from captum_attn_shapley.demos.texture_vit import to_pixel_values

    model = texture_classifier[0]
    data = make_texture_dataset(2, seed=3)
    pixels = to_pixel_values(data.images)
    attr = AttnGradShapley(model).attribute(pixels)
    hand = torch.zeros(2, 8, 8)
    hand[:, 1, 2], hand[:, 6, 5] = 1.0, -1.0
    examples = image_examples(
        model,
        pixels,
        {"AttnGradShapley": attr, "hand-made": hand},
        images=data.images,
        labels=data.labels.tolist(),
    )
    page = attribution_report(examples, model_name="texture ViT")
    dom = _self_contained(page)
    with torch.no_grad():
        predicted = model(pixel_values=pixels).logits.argmax(dim=1)
    sections = dom.root.find("section", "example")
    assert len(sections) == 2 and len(dom.root.find("img")) == 2 * 3
    for b, section in enumerate(sections):
        assert section.find("b", "predicted")[0].text() == model.config.id2label[int(predicted[b])]
        assert section.find("b", "true-label")[0].text() == model.config.id2label[int(data.labels[b])]
        shown = _png(section.find("img")[0].attrs["src"])
        factor = shown.shape[0] // 64
        assert shown.shape == (64 * factor, 64 * factor, 3) and factor * 64 >= 160
        original = data.images[b].permute(1, 2, 0).numpy() * 255
        assert np.abs(shown[::factor, ::factor] - original).max() <= 1.0
        overlay = _png(section.find("figure", "method", data_method="hand-made")[0].find("img")[0].attrs["src"])

        def at(row, col):
            return overlay[(row * 8 + 4) * factor, (col * 8 + 4) * factor]

        red, blue = at(1, 2), at(6, 5)
        assert red[0] - red[2] > 100 and blue[2] - blue[0] > 100
        legend = section.find("figure", "method", data_method="AttnGradShapley")[0].find("span", "legend")[0]
        assert float(legend.attrs["data-vmax"]) == pytest.approx(float(attr[b].abs().max()), rel=1e-6)


# ------------------------------------------------------------------------------------------ TokenTCAV


def _check_tcav_table(table, scores):
    rows = scores.rows()
    trs = table.find("tr", "tcav-row")
    assert len(trs) == len(rows)
    columns = {td.attrs["data-col"] for td in trs[0].find("td")}
    assert ("p_value_corrected" in columns) == bool(scores.correction)
    assert ("p_value_random" in columns) == ("p_value_random" in next(iter(scores.values()))[rows[0]["layer"]])
    for tr, row in zip(trs, rows):
        for td in tr.find("td"):
            key, value = td.attrs["data-col"], row[td.attrs["data-col"]]
            if isinstance(value, bool):
                assert td.attrs["data-value"] == str(value)
                assert td.text() == ("yes *" if value else "no (n.s.)")
            elif isinstance(value, float):
                assert float(td.attrs["data-value"]) == value, key
            else:
                assert td.text() == str(value), key


def test_tcav_report_table_equals_the_scores():
    corrected = hand_made_scores(
        correction="bonferroni", random_p={"vit.layers.1": [0.5, 0.001, 0.001], "vit.layers.2": [0.01] * 3}
    )
    plain = hand_made_scores()
    page = tcav_report({"striped": corrected, "dotted <x>": plain}, model_name="vit", settings={"R": 4})
    dom = _self_contained(page)
    headings = [h.text() for h in dom.root.find("h2", "target")]
    assert headings == ["Target class: striped", "Target class: dotted <x>"]
    tables = dom.root.find("table", "tcav")
    assert len(tables) == 2 and len(dom.root.find("img")) == 2  # one bar chart per target
    _check_tcav_table(tables[0], corrected)
    _check_tcav_table(tables[1], plain)
    # the truth of the hand-made case, by hand: Bonferroni (x 6) leaves layer 1's striped and zigzag below 0.05,
    # the corrected random-concept test (0.5, 0.001, 0.001 at layer 1) only dotted and zigzag: zigzag alone
    significant = [td.attrs["data-value"] == "True" for td in tables[0].find("td", data_col="significant")]
    assert significant == [False, False, True, False, False, False]
    assert "zig&lt;zag&gt;" in page
    single = tcav_report(plain, [], plot=False)
    assert len(_self_contained(single).root.find("table", "tcav")) == 1 and "<img" not in single
    with pytest.raises(TypeError, match="TokenTCAVScores"):
        tcav_report({"a": {}})


def test_tcav_heatmap_examples_are_the_token_sensitivity_maps(tmp_path):
    model = tiny_image_model("vit", num_labels=3)
    gen = torch.Generator().manual_seed(0)
    concepts = [
        image_concept(i, f"c{i}", torch.randn(6, 3, 16, 16, generator=gen) + 0.7 * i, batch_size=3)
        for i in range(3)
    ]
    tcav = TokenTCAV(model, layers=[0, 1], save_path=str(tmp_path), repeats=2)
    images = torch.rand(2, 3, 16, 16, generator=gen)
    examples = tcav_heatmap_examples(tcav, images, concepts, target=1, concepts=concepts[:2], labels=[1, 2])
    assert len(examples) == 2
    expected = {
        f"c{i} · {layer}": tcav.token_sensitivity(images, concepts, concepts[i], layer, target=1)
        for i in range(2)
        for layer in tcav.layers
    }
    for b, example in enumerate(examples):
        assert list(example.attributions) == list(expected)
        for name, maps in expected.items():
            assert torch.equal(torch.as_tensor(example.attributions[name]), maps[b])
        assert example.explained == model.config.id2label[1]
        assert example.true_label == model.config.id2label[[1, 2][b]]
    page = tcav_report(hand_made_scores(), examples)
    dom = _self_contained(page)
    assert len(dom.root.find("figure", "method")) == 2 * 4 and len(dom.root.find("img")) == 1 + 2 * 5


# ------------------------------------------------------------------------------------------ command line


def test_explain_report(default_classifier, tmp_path, capsys):
    model, tokenizer, _ = default_classifier
    text = "the flight was late & the crew was <rude>"
    path = tmp_path / "explain.html"
    assert (
        main(
            [
                "explain",
                text,
                "--methods",
                "grad-att-max-mutual",
                "att-cls",
                "--report",
                str(path),
                "--label",
                "negative",
            ]
        )
        == 0
    )
    assert f"wrote {path}" in capsys.readouterr().out
    page = path.read_text(encoding="utf-8")
    dom = _self_contained(page)
    enc = tokenizer([text], return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    forward = classifier_forward(model)
    section = dom.root.find("section", "example")[0]
    assert section.find("p", "source")[0].text() == text
    assert section.find("b", "true-label")[0].text() == "negative"
    players = text_player_mask(ids, mask, tokenizer.all_special_ids)[0].tolist()
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    cells = _metric_cells(section)
    for name, game, weighting in (
        ("Shapley-Grad-Att-Max-Mutual", "max_mutual", "grad_attention"),
        ("Shapley-Att-CLS", "cls", "attention"),
    ):
        attr = AttnGradShapley(
            model, game=game, weighting=weighting, special_token_ids=tokenizer.all_special_ids
        ).attribute(ids, additional_forward_args=(mask,))
        _check_highlights(section, name, tokens, attr[0].tolist(), players)
        common = dict(additional_forward_args=(mask,), tokenizer=tokenizer)
        assert float(cells[name, "comprehensiveness"].attrs["data-value"]) == pytest.approx(
            float(comprehensiveness(forward, ids, attr, **common)[0]), abs=1e-9
        )
        assert float(cells[name, "sufficiency"].attrs["data-value"]) == pytest.approx(
            float(sufficiency(forward, ids, attr, **common)[0]), abs=1e-9
        )
    with pytest.raises(SystemExit, match="unknown label"):
        main(["explain", text, "--report", str(path), "--label", "neutral"])


def test_compare_writes_the_report(small_bert_dir, tmp_path, capsys):
    data = tmp_path / "data.csv"
    texts = TEXTS + ["thanks for the quick help", "lost my bag again"]
    with open(data, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, [0, 1, 1, 0]))
    out = tmp_path / "out"
    assert (
        main(
            [
                "compare",
                "--model",
                str(small_bert_dir),
                "--data",
                str(data),
                "--n",
                "4",
                "--methods",
                "grad-att-max-mutual",
                "att",
                "--batch-size",
                "2",
                "--out",
                str(out),
                "--report-examples",
                "3",
            ]
        )
        == 0
    )
    assert "report.html" in capsys.readouterr().out
    page = (out / "report.html").read_text(encoding="utf-8")
    dom = _self_contained(page)
    assert len(dom.root.find("img")) == 2  # faithfulness and AOPC figures
    results = json.loads((out / "results.json").read_text())
    summary = dom.root.find("table", "summary")[0]
    for row, tr in zip(results["summary"], summary.find("tr")[1:]):
        values = {td.attrs["data-col"]: td.attrs["data-value"] for td in tr.find("td")}
        assert values["method"] == row["method"]
        assert float(values["comprehensiveness"]) == row["comprehensiveness"]
        assert float(values["sufficiency"]) == row["sufficiency"]
        assert float(values["f1_at_20"]) == row["f1_at_20"]
    with open(out / "per_example.csv") as handle:
        per_example = {(int(r["example"]), r["method"]): r for r in csv.DictReader(handle)}
    tokenizer = AutoTokenizer.from_pretrained(small_bert_dir)
    run_texts = select_view(load_text_dataset(str(data)), tokenizer, "all", 4, seed=0).texts  # the run's order
    sections = dom.root.find("section", "example")
    assert [s.attrs["id"] for s in sections] == ["example-0", "example-1", "example-2"]
    for section in sections:
        i = int(section.attrs["id"].split("-")[1])
        assert section.find("p", "source")[0].text() == run_texts[i]
        cells = _metric_cells(section)
        for method in ("Shapley-Grad-Att-Max-Mutual", "Att"):
            row = per_example[i, method]
            assert float(cells[method, "comprehensiveness"].attrs["data-value"]) == pytest.approx(
                float(row["comprehensiveness"]), abs=1e-12
            )
            assert float(cells[method, "sufficiency"].attrs["data-value"]) == pytest.approx(
                float(row["sufficiency"]), abs=1e-12
            )
            kept = ["neg", "pos"][int(row["prediction_at_20"])]
            assert cells[method, "prediction_at_20"].text().startswith(kept)
            spans = section.find("tr", "method", data_method=method)[0].find("span", "tok")
            assert sum("off" not in s.classes for s in spans) == int(row["n_players"])
    out2 = tmp_path / "out2"
    assert (
        main(
            [
                "compare",
                "--model",
                str(small_bert_dir),
                "--data",
                str(data),
                "--n",
                "4",
                "--methods",
                "att",
                "--batch-size",
                "2",
                "--out",
                str(out2),
                "--no-report",
                "--no-plot",
            ]
        )
        == 0
    )
    assert (out2 / "summary.md").is_file() and not (out2 / "report.html").exists()


def _markdown_rows(printed):
    rows = []
    for line in printed.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] != "concept_set":
            rows.append(cells)
    return rows


def test_tcav_command_textures(texture_classifier, tmp_path, capsys):
    path = tmp_path / "tcav.html"
    assert (
        main(
            [
                "tcav",
                "--classes",
                "striped",
                "--layers",
                "1",
                "--repeats",
                "3",
                "--n",
                "6",
                "--concept-examples",
                "8",
                "--heatmaps",
                "1",
                "--report",
                str(path),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    page = path.read_text(encoding="utf-8")
    dom = _self_contained(page)
    assert [h.text() for h in dom.root.find("h2", "target")] == ["Target class: striped"]
    # the printed table and the page's table hold the same rows
    printed_rows = _markdown_rows(printed)
    trs = dom.root.find("tr", "tcav-row")
    assert len(printed_rows) == len(trs) == 3
    for cells, tr in zip(printed_rows, trs):
        values = {td.attrs["data-col"]: td.attrs["data-value"] for td in tr.find("td")}
        assert cells[1] == values["concept"] and cells[2] == values["layer"] == "vit.layers.1"
        assert cells[3] == f"{float(values['t_tcav']):.3f}"
        assert cells[-1] == ("yes" if values["significant"] == "True" else "no")
    # heatmaps: one target image with its three concept maps, and the bar chart
    figures = dom.root.find("figure", "method")
    captions = [f"{c} · vit.layers.1" for c in ("striped", "dotted", "zigzag")]
    assert [f.attrs["data-method"] for f in figures] == captions
    assert len(dom.root.find("img")) == 1 + 1 + 3
    for bad in (["--repeats", "1"], ["--randoms", "2"], ["--classes", "purple"]):
        with pytest.raises(SystemExit):
            main(["tcav", "--n", "2"] + bad)


def test_tcav_command_words(default_classifier, tmp_path, capsys):
    path = tmp_path / "words.html"
    assert (
        main(
            [
                "tcav",
                "--task",
                "words",
                "--classes",
                "positive",
                "--layers",
                "2",
                "--repeats",
                "2",
                "--n",
                "4",
                "--concept-examples",
                "8",
                "--heatmaps",
                "1",
                "--report",
                str(path),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "target class: positive (4 examples)" in printed
    page = path.read_text(encoding="utf-8")
    dom = _self_contained(page)
    assert len(dom.root.find("tr", "tcav-row")) == 2 and len(dom.root.find("img")) == 1
    section = dom.root.find("section", "example")[0]
    methods = [tr.attrs["data-method"] for tr in section.find("tr", "method")]
    assert methods == ["positive words · bert.encoder.layer.2", "negative words · bert.encoder.layer.2"]
    assert section.find("b", "true-label")[0].text() == "positive"
    spans = section.find("tr", "method")[0].find("span", "tok")
    assert spans[0].text() == "[CLS]" and "off" in spans[0].classes and spans[-1].text() == "[SEP]"
