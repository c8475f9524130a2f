"""The comparison runner, its outputs, resuming, the dataset views and the `compare` command."""

import collections
import csv
import json
import sys
import types

import numpy as np
import pytest
import torch
from captum.attr import Attribution, KernelShap, LayerIntegratedGradients
from scipy import stats
from sklearn.metrics import f1_score

from captum_attn_shapley import AttnGradShapley
from captum_attn_shapley.cli import main
from captum_attn_shapley.cli.compare import resolve_compare_methods
from captum_attn_shapley.demos import load_text_dataset
from captum_attn_shapley.demos.datasets import TweetSplit, load_hub_dataset, select_view
from captum_attn_shapley.evaluation import (
    MethodSpec,
    classifier_forward,
    embedding_layer,
    mean_interval,
    run_comparison,
    standard_method_names,
    standard_methods,
)
from captum_attn_shapley.metrics import faithfulness_curves
from captum_attn_shapley.visualization import plot_comparison

TEXTS = [
    "the flight was late and the crew was rude",
    "great crew",
    "i loved the seats but the food was cold",
    "thanks for the quick help",
    "lost my bag again",
    "what a wonderful trip with friendly staff on board",
]
LABELS = [0, 1, 1, 1, 0, 1]


class Counting(Attribution):
    """Wraps an attribution and counts its calls (to check resuming)."""

    def __init__(self, inner: Attribution) -> None:
        super().__init__(inner.forward_func)
        self.inner = inner
        self.log = collections.Counter()  # not a setting: left out of the method's fingerprint

    @property
    def calls(self):
        return self.log["calls"]

    def attribute(self, inputs, **kwargs):
        self.log["calls"] += 1
        return self.inner.attribute(inputs, **kwargs)


def _methods(model, tokenizer):
    forward = classifier_forward(model)
    return [
        MethodSpec("ours", Counting(AttnGradShapley(forward, special_token_ids=tokenizer.all_special_ids))),
        MethodSpec(
            "LIG",
            Counting(LayerIntegratedGradients(forward, embedding_layer(model))),
            kwargs={"n_steps": 8},
            baselines="pad",
        ),
        MethodSpec(
            "KernelShap",
            Counting(KernelShap(forward)),
            kwargs={"n_samples": 30},
            baselines="mask",
            feature_mask=True,
        ),
    ]


def test_rows_match_per_example_evaluation(small_bert, tokenizer, tmp_path):
    """Batched, padded, length-sorted results equal each example evaluated alone."""
    methods = _methods(small_bert, tokenizer)
    result = run_comparison(
        small_bert, tokenizer, TEXTS, LABELS, methods, out_dir=tmp_path, batch_size=4, progress=False
    )
    assert len(result.rows) == len(TEXTS) * len(methods)
    forward = classifier_forward(small_bert)
    ours = AttnGradShapley(forward, special_token_ids=tokenizer.all_special_ids)
    by_key = {(r["method"], r["example"]): r for r in result.rows}
    for i, text in enumerate(TEXTS):
        enc = tokenizer([text], return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]
        attr = ours.attribute(ids, additional_forward_args=(mask,))
        curves = faithfulness_curves(forward, ids, attr, additional_forward_args=(mask,), tokenizer=tokenizer)
        row = by_key[("ours", i)]
        assert row["comprehensiveness"] == pytest.approx(float(curves.comprehensiveness()[0]), abs=1e-5)
        assert row["sufficiency"] == pytest.approx(float(curves.sufficiency()[0]), abs=1e-5)
        assert row["n_players"] == len(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert row["label"] == LABELS[i]
        assert row["predicted"] == int(forward(ids, mask).argmax(1))
        players = attr[0][1:-1].tolist()
        assert result.attributions["ours"][i] == pytest.approx(players, abs=1e-5)
    # summary statistics are those of the rows
    for summary in result.summary:
        rows = [r for r in result.rows if r["method"] == summary["method"]]
        comp = [r["comprehensiveness"] for r in rows]
        half = stats.t.ppf(0.975, len(comp) - 1) * stats.sem(comp)
        assert summary["comprehensiveness"] == pytest.approx(np.mean(comp))
        assert summary["comprehensiveness_ci95"] == pytest.approx(half)
        assert summary["f1_at_20"] == pytest.approx(
            f1_score([r["label"] for r in rows], [r["prediction_at_20"] for r in rows], average="macro")
        )
        assert summary["examples_per_second"] == pytest.approx(len(rows) / summary["seconds"])
        assert summary["seconds"] == pytest.approx(sum(r["seconds"] for r in rows))


def test_outputs_and_resume(small_bert, tokenizer, tmp_path):
    methods = _methods(small_bert, tokenizer)
    first = run_comparison(
        small_bert,
        tokenizer,
        TEXTS,
        LABELS,
        methods,
        out_dir=tmp_path,
        batch_size=3,
        progress=False,
        plot=plot_comparison,
    )
    assert [m.attribution.calls for m in methods] == [2, 2, 2]
    with open(tmp_path / "per_example.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 18 and {"method", "example", "comprehensiveness", "sufficiency", "seconds"} <= set(rows[0])
    payload = json.loads((tmp_path / "results.json").read_text())
    assert [s["method"] for s in payload["summary"]] == ["ours", "LIG", "KernelShap"]
    assert payload["bins"] == [0, 10, 20, 50]
    table = (tmp_path / "summary.md").read_text()
    assert table.startswith("| method |") and "| KernelShap | 6 |" in table
    png = (tmp_path / "faithfulness.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    again = run_comparison(
        small_bert, tokenizer, TEXTS, LABELS, methods, out_dir=tmp_path, batch_size=3, progress=False
    )
    assert [m.attribution.calls for m in methods] == [2, 2, 2]  # nothing recomputed
    assert again.rows == first.rows and again.summary == first.summary

    fresh = run_comparison(
        small_bert, tokenizer, TEXTS, LABELS, _methods(small_bert, tokenizer), batch_size=3, progress=False
    )  # recomputed from scratch: the same numbers (seeded methods)
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in fresh.rows] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in first.rows
    ]

    methods[2].kwargs["n_samples"] = 40  # a changed method is recomputed, the others are not
    run_comparison(small_bert, tokenizer, TEXTS, LABELS, methods, out_dir=tmp_path, batch_size=3, progress=False)
    assert [m.attribution.calls for m in methods] == [2, 2, 4]

    run_comparison(
        small_bert, tokenizer, TEXTS[:4], LABELS[:4], methods, out_dir=tmp_path, batch_size=3, progress=False
    )  # other data: everything recomputed
    assert [m.attribution.calls for m in methods] == [4, 4, 6]

    with torch.no_grad():  # another model (same architecture): never reuse its results
        small_bert.classifier.bias.add_(0.5)
    try:
        run_comparison(
            small_bert, tokenizer, TEXTS[:4], LABELS[:4], methods, out_dir=tmp_path, batch_size=3, progress=False
        )
    finally:
        with torch.no_grad():
            small_bert.classifier.bias.sub_(0.5)
    assert [m.attribution.calls for m in methods] == [6, 6, 8]


def test_max_examples_runs_a_method_on_the_first_examples(small_bert, tokenizer):
    forward = classifier_forward(small_bert)
    ours = AttnGradShapley(forward, special_token_ids=tokenizer.all_special_ids)
    methods = [MethodSpec("all", ours), MethodSpec("first three", ours, max_examples=3)]
    result = run_comparison(small_bert, tokenizer, TEXTS, LABELS, methods, batch_size=4, progress=False)
    full = {r["example"]: r for r in result.rows if r["method"] == "all"}
    few = [r for r in result.rows if r["method"] == "first three"]
    assert [r["example"] for r in few] == [0, 1, 2]
    assert [s["n"] for s in result.summary] == [6, 3]
    for row in few:
        assert row["comprehensiveness"] == pytest.approx(full[row["example"]]["comprehensiveness"], abs=1e-5)
        assert row["sufficiency"] == pytest.approx(full[row["example"]]["sufficiency"], abs=1e-5)


def test_standard_methods_build_and_run(small_bert, tokenizer):
    names = standard_method_names()
    assert names[:6] == [
        "Shapley-Att-CLS",
        "Shapley-Att-Mutual",
        "Shapley-Att-Max-Mutual",
        "Shapley-Grad-Att-CLS",
        "Shapley-Grad-Att-Mutual",
        "Shapley-Grad-Att-Max-Mutual",
    ]
    specs = standard_methods(small_bert, tokenizer, [n for n in names if n != "SHAP"], batch_size=4)
    assert [s.name for s in specs] == [n for n in names if n != "SHAP"]
    for spec in specs:  # shrink the costly ones for the test
        for key, small in (("n_samples", 8), ("n_steps", 4)):
            if key in spec.kwargs:
                spec.kwargs[key] = small
    result = run_comparison(small_bert, tokenizer, TEXTS[:4], LABELS[:4], specs, batch_size=4, progress=False)
    assert len(result.summary) == len(specs)
    for summary in result.summary:
        assert np.isfinite(summary["comprehensiveness"]) and np.isfinite(summary["sufficiency"])
    # the exact variant and its estimators agree in sign structure; the estimators are close at 8 samples
    exact = np.concatenate(result.attributions["Shapley-Grad-Att-Max-Mutual"])
    sampled = np.concatenate(result.attributions["Shapley-Grad-Att-Max-Mutual (permutation, 100)"])
    assert np.corrcoef(exact, sampled)[0, 1] > 0.5
    with pytest.raises(ValueError, match="Unknown method"):
        standard_methods(small_bert, tokenizer, ["IntegratedHessians"])


def test_bad_input(small_bert, tokenizer):
    methods = _methods(small_bert, tokenizer)[:1]
    with pytest.raises(ValueError, match="one gold label per text"):
        run_comparison(small_bert, tokenizer, TEXTS, LABELS[:3], methods, progress=False)
    with pytest.raises(ValueError, match="one gold label per text"):
        run_comparison(small_bert, tokenizer, TEXTS, None, methods, progress=False)
    with pytest.raises(ValueError, match="empty"):
        run_comparison(small_bert, tokenizer, [], [], methods, progress=False)
    with pytest.raises(ValueError, match="No methods"):
        run_comparison(small_bert, tokenizer, TEXTS, LABELS, [], progress=False)
    with pytest.raises(ValueError, match="unique"):
        run_comparison(small_bert, tokenizer, TEXTS, LABELS, methods + methods, progress=False)
    with pytest.raises(ValueError, match="outside 0-100"):
        run_comparison(small_bert, tokenizer, TEXTS, LABELS, methods, bins=(0, 150), progress=False)
    with pytest.raises(TypeError, match="MethodSpec"):
        run_comparison(small_bert, tokenizer, TEXTS, LABELS, ["ours"], progress=False)


def test_mean_interval():
    mean, half = mean_interval([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    sd = np.std([1.0, 2.0, 4.0], ddof=1)
    assert half == pytest.approx(4.302652729911275 * sd / np.sqrt(3))  # t_{0.975, 2}
    assert np.isnan(mean_interval([1.0])[1])


def test_views_of_the_tweets(tokenizer):
    data = load_text_dataset("tweets")
    assert len(data) == 1000

    def length(text):
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    short = select_view(data, tokenizer, "short", n=40, seed=1)
    assert len(short) == 40 and sum(short.labels) == 20
    assert max(length(t) for t in short.texts) <= 15
    assert select_view(data, tokenizer, "short", n=40, seed=1).texts == short.texts
    assert select_view(data, tokenizer, "short", n=40, seed=2).texts != short.texts
    long = select_view(data, tokenizer, "long", n=20)
    for label in (0, 1):
        lengths = sorted((length(t) for t, y in zip(data.texts, data.labels) if y == label), reverse=True)
        chosen = sorted((length(t) for t, y in zip(long.texts, long.labels) if y == label), reverse=True)
        assert chosen == lengths[:10]
    everything = select_view(data, tokenizer, "all", n=30, seed=0)
    assert len(everything) == 30 and sum(everything.labels) == 15
    with pytest.raises(ValueError, match="Unknown view"):
        select_view(data, tokenizer, "medium", n=10)
    with pytest.raises(ValueError, match="smallest class"):
        select_view(data, tokenizer, "short", n=100_000)


def test_hub_dataset_columns_with_a_stand_in_datasets_module(monkeypatch):
    """The hub is unreachable here: check the column mapping with a stand-in `datasets` module."""

    class Split(dict):
        column_names = ["idx", "sentence", "label"]
        features = {"label": types.SimpleNamespace(names=["negative", "positive"])}

    calls = []

    def load_dataset(hub_id, split):
        calls.append((hub_id, split))
        return Split(idx=[0, 1], sentence=["a fine film", "a dull film"], label=[1, 0])

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    data = load_hub_dataset("sst2")
    assert calls == [("stanfordnlp/sst2", "validation")]
    assert data.texts == ["a fine film", "a dull film"] and data.labels == [1, 0]
    assert data.label_names == ("negative", "positive")
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed
    with pytest.raises(ImportError, match="pip install datasets"):
        load_hub_dataset("imdb")


def test_compare_command(small_bert, tokenizer, tmp_path, capsys):
    model_dir = tmp_path / "model"
    small_bert.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    data = tmp_path / "data.csv"
    with open(data, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(TEXTS, LABELS))
    out = tmp_path / "out"
    code = main(
        [
            "compare",
            "--model",
            str(model_dir),
            "--data",
            str(data),
            "--n",
            "4",
            "--view",
            "all",
            "--methods",
            "grad-att-max-mutual",
            "att",
            "--batch-size",
            "2",
            "--out",
            str(out),
            "--no-plot",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| Shapley-Grad-Att-Max-Mutual | 4 |" in printed and "| Att | 4 |" in printed
    assert (out / "summary.md").is_file() and not (out / "faithfulness.png").exists()
    assert main(["compare", "--list-methods"]) == 0
    assert "ShapleyValueSampling" in capsys.readouterr().out.splitlines()
    assert resolve_compare_methods(["KERNELSHAP", "grad-att-max-mutual-permutation-100", "shapley_att_cls"]) == [
        "KernelShap",
        "Shapley-Grad-Att-Max-Mutual (permutation, 100)",
        "Shapley-Att-CLS",
    ]
    with pytest.raises(SystemExit, match="unknown method"):
        resolve_compare_methods(["deeplift"])
    assert isinstance(load_text_dataset(str(data)), TweetSplit)
