"""The command-line program, on a local model directory and on the embedded default model."""

import json

import pytest
import torch

from captum_attn_shapley import AttnGradShapley
from captum_attn_shapley.attr import PAPER_VARIANTS
from captum_attn_shapley.cli import main
from captum_attn_shapley.cli.explain import resolve_methods


def test_explain_on_a_local_model(tiny_bert_dir, tokenizer, tmp_path, capsys):
    path = tiny_bert_dir
    html_file, json_file = tmp_path / "out.html", tmp_path / "out.json"
    text = "the crew was rude"
    assert (
        main(
            [
                "explain",
                text,
                "--model",
                str(path),
                "--methods",
                "all",
                "--target",
                "pos",
                "--html",
                str(html_file),
                "--json",
                str(json_file),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "explaining class: pos" in out
    for token in ("[CLS]", "crew", "rude", "[SEP]", "Shapley-Grad-Att-Max-Mutual", "Grad-SAM"):
        assert token in out
    payload = json.loads(json_file.read_text())
    assert payload["tokens"] == ["[CLS]", "the", "crew", "was", "rude", "[SEP]"]
    assert payload["players"] == [False, True, True, True, True, False]
    # the printed scores are the library's scores
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    enc = tokenizer([text], return_tensors="pt")
    expected = AttnGradShapley(model, special_token_ids=tokenizer.all_special_ids).attribute(
        enc["input_ids"], target=1, additional_forward_args=(enc["attention_mask"],)
    )
    assert torch.allclose(torch.tensor(payload["scores"]["Shapley-Grad-Att-Max-Mutual"]), expected[0], atol=1e-6)
    page = html_file.read_text()
    assert page.startswith("<!DOCTYPE html>") and "rude" in page and "<script" not in page
    assert "http" not in page  # self-contained


def test_method_names_and_bad_arguments(tiny_bert_dir):
    path = tiny_bert_dir
    assert resolve_methods(["grad_att_max_mutual", "Shapley-Att-CLS", "att"]) == [
        "Shapley-Grad-Att-Max-Mutual",
        "Shapley-Att-CLS",
        "Att",
    ]
    assert resolve_methods(["all"])[:6] == list(PAPER_VARIANTS)
    with pytest.raises(SystemExit, match="unknown method"):
        main(["explain", "hello", "--model", str(path), "--methods", "nope"])
    with pytest.raises(SystemExit, match="text is empty"):
        main(["explain", "  ", "--model", str(path)])
    with pytest.raises(SystemExit, match="unknown target"):
        main(["explain", "hello", "--model", str(path), "--target", "neutral"])
    with pytest.raises(SystemExit, match="out of range"):
        main(["explain", "hello", "--model", str(path), "--target", "5"])


def test_explain_with_the_default_model(default_classifier, capsys):
    main(["explain", "the flight was late and the crew was rude"])
    out = capsys.readouterr().out
    assert out.startswith("prediction: negative")
    assert "held-out accuracy" in out and "rude" in out
