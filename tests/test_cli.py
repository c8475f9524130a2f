"""The command-line program, on a local model directory and on the embedded default model."""

import json
import os
import pathlib
import subprocess
import sys

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
    expected = AttnGradShapley(model, game="max_mutual", special_token_ids=tokenizer.all_special_ids).attribute(
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


# ----------------------------------------------------------------------------- user errors
# Every bad command line exits with status 2 and two plain lines on stderr (what was wrong, how to fix
# it), no traceback. The first table needs no model: it runs with every model loader replaced by one
# that fails the test, so these arguments are checked before any model is loaded (or trained).

LONG_TEXT = " ".join(["the crew was rude"] * 40)

WITHOUT_A_MODEL = [
    # explain
    (["explain", "hi", "--model", "{missing}/model"], ["--model", "no such directory", "save_pretrained"]),
    (["explain", "hi", "--model", "{file}"], ["--model", "is a file, not a model directory"]),
    (["explain", "hi", "--model", "{empty}"], ["--model", "holds no config.json"]),
    (["explain", "hi", "--max-length", "-5"], ["argument --max-length", "positive integer", "'-5'"]),
    (["explain", "hi", "--max-length", "0"], ["argument --max-length", "positive integer", "'0'"]),
    (["explain", "hi", "--max-length", "many"], ["argument --max-length", "positive integer", "'many'"]),
    (["explain", "caf\udce9"], ["the text is not valid UTF-8", "byte 0xe9", "iconv"]),
    (["explain", "  "], ["the text is empty"]),
    (["explain", "hi", "--methods", "nope"], ["--methods", "unknown method"]),
    (["explain", "hi", "--layers", "two"], ["argument --layers", "invalid int value: 'two'"]),
    (["explain", "hi", "--html", "{missing}/page.html"], ["--html", "folder", "does not exist", "mkdir"]),
    (["explain", "hi", "--json", "{tmp}"], ["--json", "is a directory, not a file"]),
    (["explain", "hi", "--report", "{file}/report.html"], ["--report", "is a file, not a folder"]),
    # compare
    (["compare"], ["--out DIR is required", "--list-methods"]),
    (["compare", "--out", "{missing}/results"], ["--out", "does not exist"]),
    (["compare", "--out", "{file}"], ["--out", "is a file, not a directory"]),
    (["compare", "--out", "{tmp}/r", "--n", "0"], ["argument --n", "positive integer", "'0'"]),
    (["compare", "--out", "{tmp}/r", "--batch-size", "0"], ["argument --batch-size", "positive integer"]),
    (["compare", "--out", "{tmp}/r", "--max-length", "-5"], ["argument --max-length", "positive integer"]),
    (["compare", "--out", "{tmp}/r", "--seed", "-1"], ["argument --seed", "0 or more"]),
    (["compare", "--out", "{tmp}/r", "--bins", "0", "150"], ["argument --bins", "between 0 and 100", "'150'"]),
    (["compare", "--out", "{tmp}/r", "--f1-k", "nan"], ["argument --f1-k", "between 0 and 100"]),
    (["compare", "--out", "{tmp}/r", "--view", "tiny"], ["argument --view", "invalid choice"]),
    (["compare", "--out", "{tmp}/r", "--methods", "deeplift"], ["--methods", "unknown method", "--list-methods"]),
    (["compare", "--out", "{tmp}/r", "--replacement", "blank"], ["--replacement 'blank'", "mask"]),
    (["compare", "--out", "{tmp}/r", "--data", "{missing}/data.csv"], ["--data", "no such file"]),
    (["compare", "--out", "{tmp}/r", "--data", "{tmp}"], ["--data", "is a directory, not a CSV file"]),
    (["compare", "--out", "{tmp}/r", "--data", "{latin1}"], ["--data", "is not UTF-8", "text and label"]),
    (["compare", "--out", "{tmp}/r", "--data", "{no_header}"], ["--data", "`text` and `label` columns"]),
    (["compare", "--out", "{tmp}/r", "--data", "{named_labels}"], ["--data", "'positive'", "integer labels"]),
    (
        ["compare", "--out", "{tmp}/r", "--data", "{data}", "--n", "1"],
        ["--n 1 is fewer than the 3 classes", "give --n 3 or more"],
    ),
    # tcav
    (["tcav", "--repeats", "1"], ["argument --repeats", "integer >= 2", "'1'"]),
    (["tcav", "--randoms", "2"], ["argument --randoms", "0 or an integer >= 3"]),
    (["tcav", "--n", "0"], ["argument --n", "positive integer"]),
    (["tcav", "--concept-examples", "0"], ["argument --concept-examples", "positive integer"]),
    (["tcav", "--heatmaps", "-1"], ["argument --heatmaps", "0 or more"]),
    (["tcav", "--batch-size", "0"], ["argument --batch-size", "positive integer"]),
    (["tcav", "--alpha", "1.5"], ["argument --alpha", "between 0 and 1"]),
    (["tcav", "--seed", "-3"], ["argument --seed", "0 or more"]),
    (["tcav", "--concepts", "shapes"], ["argument --concepts", "invalid choice"]),
    (["tcav", "--report", "{missing}/tcav.html"], ["--report", "does not exist"]),
    (["tcav", "--cav-dir", "{file}"], ["--cav-dir", "is a file, not a directory"]),
    (["tcav", "--model", "{missing}/vit"], ["--model", "no such directory"]),
    (["tcav", "--task", "words", "--n", "100000"], ["--n 100000", "held-out tweets per class"]),
    (
        ["tcav", "--task", "words", "--concept-examples", "100000"],
        ["--concept-examples 100000", "words per concept"],
    ),
    # insights
    (["insights", "--n", "0"], ["argument --n", "positive integer"]),
    (["insights", "--seed", "-1"], ["argument --seed", "0 or more"]),
    (["insights", "--port", "70000"], ["argument --port", "between 1 and 65535"]),
    (["insights", "--task", "audio"], ["argument --task", "invalid choice"]),
    # the program
    ([], ["the following arguments are required: command"]),
    (["explode"], ["invalid choice: 'explode'"]),
]


@pytest.fixture
def paths(tmp_path):
    """Placeholders of the command lines: folders and files, good and bad."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("not a model")
    (tmp_path / "latin1.csv").write_bytes("text,label\ncaf\xe9 au lait,1\nrude,0\n".encode("latin-1"))
    (tmp_path / "no_header.csv").write_text("great crew,1\nrude crew,0\n")
    (tmp_path / "named_labels.csv").write_text("text,label\ngreat crew,positive\nrude crew,negative\n")
    (tmp_path / "data.csv").write_text("text,label\ngreat crew,1\nrude crew,0\nlost my bag,5\n")
    (tmp_path / "binary.csv").write_text("text,label\ngreat crew,1\nrude crew,0\n")
    return {
        "tmp": str(tmp_path),
        "missing": str(tmp_path / "missing"),
        "file": str(tmp_path / "file.txt"),
        "empty": str(tmp_path / "empty"),
        "latin1": str(tmp_path / "latin1.csv"),
        "no_header": str(tmp_path / "no_header.csv"),
        "named_labels": str(tmp_path / "named_labels.csv"),
        "data": str(tmp_path / "data.csv"),
        "binary": str(tmp_path / "binary.csv"),
    }


@pytest.fixture
def no_model_loading(monkeypatch):
    """Every way the commands load a model fails the test."""
    import transformers

    from captum_attn_shapley.demos import default_model, vision_model

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    for module, name in (
        (default_model, "load_classifier"),
        (default_model, "load_default_classifier"),
        (vision_model, "load_texture_vit"),
        (vision_model, "load_texture_classifier"),
    ):
        monkeypatch.setattr(module, name, loaded)
    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(loaded))


def _user_error(argv, capsys):
    """Runs the program; returns its stderr after checking the exit status 2, the two lines, no traceback."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert 1 <= len(lines) <= 2, err
    assert lines[0].startswith("captum-attn-shapley") and ": error: " in lines[0]
    assert "Traceback" not in err and out == ""
    return err


@pytest.mark.parametrize(
    "argv, message", WITHOUT_A_MODEL, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_bad_command_lines_are_refused_before_any_model_is_loaded(argv, message, paths, no_model_loading, capsys):
    err = _user_error([arg.format(**paths) for arg in argv], capsys)
    for part in message:
        assert part in err, err
    if argv and argv[0] in ("explain", "compare", "tcav", "insights"):
        assert err.startswith(f"captum-attn-shapley {argv[0]}: error: ")


# What depends on the model is checked once it is loaded (the tiny BERT of conftest.py, 64 positions,
# classes neg and pos), before anything is computed or written.
WITH_THE_MODEL = [
    (["explain", LONG_TEXT, "--model", "{model}", "--max-length", "1000"], ["more than the {limit} positions"]),
    (["explain", "hi", "--model", "{model}", "--target", "neutral"], ["--target", "unknown target 'neutral'"]),
    (["explain", "hi", "--model", "{model}", "--target", "5"], ["target 5 out of range", "0: neg, 1: pos"]),
    (
        ["explain", "hi", "--model", "{model}", "--label", "7", "--json", "{tmp}/scores.json"],
        ["--label", "out of range"],
    ),
    (["explain", "hi", "--model", "{model}", "--layers", "9"], ["--layers 9", "does not exist"]),
    (
        ["explain", "hi", "--model", "{model}", "--methods", "attnlrp", "--layers", "0"],
        ["does not apply to AttnLRP"],
    ),
    (["explain", "hi", "--model", "nobody/no-such-model"], ["--model 'nobody/no-such-model' could not be loaded"]),
    # a label the model does not have: refused before any F1 is computed
    (
        ["compare", "--model", "{model}", "--data", "{data}", "--out", "{tmp}/results"],
        ["labels [5]", "does not have"],
    ),
    (
        [
            "compare",
            "--model",
            "{model}",
            "--data",
            "{binary}",
            "--n",
            "2",
            "--max-length",
            "1000",
            "--out",
            "{tmp}/r",
        ],
        ["--max-length 1000 is more than the {limit} positions"],
    ),
    (
        [
            "compare",
            "--model",
            "{model}",
            "--data",
            "{binary}",
            "--n",
            "2",
            "--replacement",
            "999999",
            "--out",
            "{tmp}/r",
        ],
        ["--replacement '999999' is not a token id of the tokenizer"],
    ),
    (
        ["tcav", "--task", "words", "--model", "{model}", "--classes", "purple"],
        ["--classes", "unknown class 'purple'"],
    ),
    (["tcav", "--task", "words", "--model", "{model}", "--layers", "9"], ["--layers 9:", "Leave --layers out"]),
]


@pytest.mark.parametrize("argv, message", WITH_THE_MODEL, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_values_that_depend_on_the_model_are_refused_before_computing(
    argv, message, tiny_bert_dir, paths, capsys
):
    limit = json.loads((tiny_bert_dir / "config.json").read_text())["max_position_embeddings"]
    err = _user_error([arg.format(model=tiny_bert_dir, **paths) for arg in argv], capsys)
    for part in message:
        assert part.format(limit=limit) in err, err
    tmp = pathlib.Path(paths["tmp"])
    assert not (tmp / "scores.json").exists() and not (tmp / "results").exists() and not (tmp / "r").exists()


def test_the_program_exits_with_status_2_on_bytes_that_are_not_utf8(tmp_path):
    """The real program, as a shell runs it (`python -m captum_attn_shapley`): Latin-1 bytes on the command line,
    no model loaded."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", CAPTUM_ATTN_SHAPLEY_CACHE=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "captum_attn_shapley", "explain", "caf\xe9 au lait".encode("latin-1")],
        capture_output=True,
        env=env,
        timeout=300,
    )
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2 and done.stdout == b""
    assert err.splitlines() == [
        "captum-attn-shapley explain: error: the text is not valid UTF-8 (byte 0xe9 at character 3).",
        "Pass UTF-8 text: convert it first, e.g. with iconv -f latin1 -t utf-8, or set a UTF-8 locale.",
    ]
    assert not any(tmp_path.iterdir())  # no model was trained into the (empty) cache


def test_debug_shows_the_traceback(capsys):
    for argv in (["explain", " ", "--debug"], ["--debug", "explain", " "]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("Traceback") and "UserError: the text is empty." in err


def test_errors_of_the_library_read_as_user_errors(monkeypatch, capsys):
    """A clear library message (here from the model loader) arrives as two lines, not inside a traceback."""
    from captum_attn_shapley.demos import default_model

    def refuse(*args, **kwargs):
        raise ValueError("The cached model is for another transformers version: retrain it with retrain=True.")

    monkeypatch.setattr(default_model, "load_classifier", refuse)
    err = _user_error(["explain", "the crew was rude"], capsys)
    assert err.splitlines() == [
        "captum-attn-shapley explain: error: The cached model is for another transformers version: retrain it "
        "with retrain=True.",
        "Run the command again with --debug for the traceback.",
    ]
    with pytest.raises(ValueError, match="another transformers version"):
        main(["explain", "the crew was rude", "--debug"])
