"""``captum-attn-shapley generate``: a causal LM's continuation explained per token, on a local model directory."""

import json

import numpy as np
import pytest
import torch

from captum_attn_shapley.attr import LLMAttnGradShapley
from captum_attn_shapley.cli import main

PROMPT = "a = 3 , k = 7 ; k ="


@pytest.fixture(scope="module")
def tiny_lm_dir(tmp_path_factory):
    """A random-init tiny GPT-2 and its word-level tokenizer, saved as a local model directory."""
    from tiny_models import save_model_dir, tiny_causal_lm, tiny_word_tokenizer

    return save_model_dir(tiny_causal_lm("gpt2"), tiny_word_tokenizer(bos=False), tmp_path_factory.mktemp("lm"))


def _direct(model_dir, **kwargs):
    """The library's result for the prompt (the command must print and write exactly these numbers)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    game = kwargs.pop("game", "cls")
    weighting = kwargs.pop("weighting", "grad_attention")
    explainer = LLMAttnGradShapley(model, tokenizer, game=game, weighting=weighting)
    return explainer.attribute(PROMPT, **kwargs), model, tokenizer


def _array(values):
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


@pytest.mark.parametrize("game, weighting", [("cls", "grad_attention"), ("max_mutual", "attention")])
def test_teacher_forced_target_table_report_and_json(tiny_lm_dir, tmp_path, capsys, game, weighting):
    report, scores = tmp_path / "generation.html", tmp_path / "scores.json"
    argv = ["generate", PROMPT, "--model", str(tiny_lm_dir), "--target", " 7 , a", "--game", game]
    argv += ["--weighting", weighting, "--report", str(report), "--json", str(scores)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    expected, _, _ = _direct(tiny_lm_dir, target=" 7 , a", game=game, weighting=weighting)
    payload = json.loads(scores.read_text())
    assert payload["output_tokens"] == list(expected.output_tokens) and len(payload["output_tokens"]) == 3
    assert payload["input_tokens"] == list(expected.input_tokens)
    columns = list(payload["scores"])
    assert columns == ["1:7", "2:,", "3:a", "sum"]
    token_attr = _array(expected.token_attr)
    for t, column in enumerate(columns[:-1]):
        np.testing.assert_allclose(payload["scores"][column], token_attr[t], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(payload["scores"]["sum"], token_attr.sum(axis=0), rtol=1e-6, atol=1e-9)
    assert "teacher forced" in out and f"{game} game, {weighting} weighting" in out
    for token in PROMPT.split():
        assert token in out
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and "1:7" in html and "<script" not in html


def test_generated_continuation_is_the_models_greedy_one(tiny_lm_dir, tmp_path, capsys):
    scores = tmp_path / "scores.json"
    argv = ["generate", PROMPT, "--model", str(tiny_lm_dir), "--max-new-tokens", "3", "--json", str(scores)]
    assert main(argv) == 0
    assert "generated greedily" in capsys.readouterr().out
    payload = json.loads(scores.read_text())
    _, model, tokenizer = _direct(tiny_lm_dir, target=None, gen_args={"max_new_tokens": 1})
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        greedy = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0)[0, ids.shape[1] :]
    assert len(payload["output_tokens"]) == greedy.numel()
    assert [t.strip() for t in payload["output_tokens"]] == tokenizer.convert_ids_to_tokens(greedy.tolist())


def _user_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("captum-attn-shapley")
    return err


def test_user_errors_exit_with_status_2(tiny_lm_dir, tiny_bert_dir, tmp_path, capsys):
    assert "--max-new-tokens" in _user_error(["generate", PROMPT, "--max-new-tokens", "0"], capsys)
    assert "--game" in _user_error(["generate", PROMPT, "--game", "shapley"], capsys)
    assert "prompt" in _user_error(["generate", "   ", "--model", str(tiny_lm_dir)], capsys)
    assert "--model" in _user_error(["generate", PROMPT, "--model", str(tmp_path / "missing")], capsys)
    # a sequence classifier is not a causal language model: the library's message, as a user error
    assert "causal" in _user_error(["generate", PROMPT, "--model", str(tiny_bert_dir)], capsys)
