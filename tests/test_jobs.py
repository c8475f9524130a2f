"""Dataset jobs (captum_attn_shapley.jobs, ``explain-dataset``): the job's scores equal the methods called
directly on each example alone; 1 and 2 local workers give bit-identical files; a rerun recomputes only
missing or partial shards; another job's folder is refused unless overwritten; bad input fails before work."""

import csv
import json
import random
import shutil

import pytest
import torch
from captum.attr import LayerGradientXActivation
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from captum_attn_shapley.cli import main
from captum_attn_shapley.evaluation import attention_method, classifier_forward, embedding_layer
from captum_attn_shapley.jobs import JobSpec, explain_dataset, job_status, pending_shards, plan_shards
from captum_attn_shapley.jobs import local as local_engine
from captum_attn_shapley.jobs._faults import CRASH_ENV
from captum_attn_shapley.metrics import faithfulness_curves

#: Dataset jobs need the ``jobs`` extra (pyarrow): scripts/test.sh runs them in the captum 0.9 environment only.
pytestmark = pytest.mark.jobs


def _read_table(path):
    import pyarrow.parquet as pq

    return pq.read_table(path)


METHODS = ["Shapley-Grad-Att-Max-Mutual", "Att", "InputXGradient"]
WORDS = "the crew was rude and the flight late but lovely food great service never again on time".split()
# 20 examples, 4 per batch, 8 per shard: shards of 8, 8 and 4 examples
OPTIONS = dict(batch_size=4, shard_size=8, label_column="label", progress=False)


def _write_csv(path, n=20, seed=0):
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(n):
            writer.writerow([" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14))), i % 2])
    return path


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    return _write_csv(tmp_path_factory.mktemp("data") / "tweets.csv")


@pytest.fixture(scope="module")
def one_worker(tiny_bert_dir, data_csv, tmp_path_factory):
    """The job run in this process (metrics on): the reference of the other tests."""
    out = tmp_path_factory.mktemp("job") / "out"
    result = explain_dataset(data_csv, out, str(tiny_bert_dir), METHODS, metrics=True, **OPTIONS)
    return result


def _texts(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def test_scores_equal_the_methods_called_on_each_example(one_worker, tiny_bert_dir, data_csv):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    forward = classifier_forward(model)
    tokens = one_worker.read_tokens().to_pydict()
    examples = one_worker.read_examples().to_pydict()
    assert one_worker.computed == [0, 1, 2] and one_worker.status.complete
    assert examples["example"] == list(range(20)) and examples["label"] == [i % 2 for i in range(20)]
    for i, text in enumerate(_texts(data_csv)):
        enc = tokenizer(text, return_tensors="pt", return_offsets_mapping=True)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        rows = [r for r, e in enumerate(tokens["example"]) if e == i]
        assert [tokens["token_index"][r] for r in rows] == list(range(ids.shape[1]))
        assert [tokens["token"][r] for r in rows] == tokenizer.convert_ids_to_tokens(ids[0].tolist())
        assert [[tokens["start"][r], tokens["end"][r]] for r in rows] == enc["offset_mapping"][0].tolist()
        with torch.no_grad():
            probs = forward(ids, mask).softmax(-1)[0]
        target = int(probs.argmax())
        assert examples["predicted"][i] == target
        assert examples["probability"][i] == pytest.approx(float(probs[target]), rel=1e-5)
        direct = {
            name: attention_method(name, forward, tokenizer.all_special_ids).attribute(
                ids, target=target, additional_forward_args=(mask,)
            )[0]
            for name in METHODS[:2]
        }
        grad_x = LayerGradientXActivation(forward, embedding_layer(model)).attribute(
            ids, target=target, additional_forward_args=(mask,)
        )
        direct["InputXGradient"] = grad_x[0].sum(-1)
        for name, expected in direct.items():
            got = torch.tensor([tokens[name][r] for r in rows])
            torch.testing.assert_close(got, expected.detach().float(), rtol=1e-4, atol=1e-6)
        curves = faithfulness_curves(
            forward,
            ids,
            direct["Att"][None],
            target=torch.tensor([target]),
            additional_forward_args=(mask,),
            tokenizer=tokenizer,
        )
        assert examples["comprehensiveness:Att"][i] == pytest.approx(
            float(curves.comprehensiveness()[0]), abs=1e-5
        )
        assert examples["sufficiency:Att"][i] == pytest.approx(float(curves.sufficiency()[0]), abs=1e-5)


def test_two_local_workers_are_bit_identical_to_one_even_after_a_crash(
    one_worker, tiny_bert_dir, data_csv, tmp_path, monkeypatch
):
    # the worker that reaches shard 1 first dies (os._exit); a fresh pool computes what was left
    monkeypatch.setenv(CRASH_ENV, f"1:{tmp_path / 'crashed'}")
    result = explain_dataset(
        data_csv, tmp_path / "out", str(tiny_bert_dir), METHODS, metrics=True, workers=2, **OPTIONS
    )
    assert sorted(result.computed) == [0, 1, 2]
    for kind in ("shard", "examples"):
        for index in range(3):
            name = f"{kind}-{index:05d}.parquet"
            assert _read_table(tmp_path / "out" / name).equals(_read_table(one_worker.out_dir / name)), name
    assert (tmp_path / "out" / "_SUCCESS").is_file() and (tmp_path / "crashed").is_file()
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_a_rerun_recomputes_only_missing_or_partial_shards(
    one_worker, tiny_bert_dir, data_csv, tmp_path, monkeypatch
):
    out = tmp_path / "out"
    shutil.copytree(one_worker.out_dir, out)
    (out / "shard-00001.parquet").unlink()  # missing
    (out / "shard-00002.parquet").unlink()  # interrupted while writing: only a partial temporary file
    (out / ".shard-00002.parquet.0123abcd.tmp").write_bytes(b"PAR1 partial")
    (out / "_SUCCESS").unlink()
    spec = JobSpec(
        str(data_csv),
        str(tiny_bert_dir),
        tuple(METHODS),
        metrics=True,
        batch_size=4,
        shard_size=8,
        label_column="label",
    )
    assert pending_shards(spec, out) == [1, 2]
    assert job_status(out).shards_done == 1 and not job_status(out).complete
    calls = []
    real = local_engine.run_shard

    def counting(spec, index, out_dir):
        calls.append(index)
        return real(spec, index, out_dir)

    monkeypatch.setattr(local_engine, "run_shard", counting)
    result = explain_dataset(data_csv, out, str(tiny_bert_dir), METHODS, metrics=True, **OPTIONS)
    assert calls == [1, 2] and result.computed == [1, 2]
    assert not list(out.glob("*.tmp")) and (out / "_SUCCESS").is_file()
    assert result.read_tokens().equals(one_worker.read_tokens())
    assert result.read_examples().equals(one_worker.read_examples())
    calls.clear()
    again = explain_dataset(data_csv, out, str(tiny_bert_dir), METHODS, metrics=True, **OPTIONS)
    assert calls == [] and again.computed == [] and again.status.complete


def test_another_job_in_the_folder_is_refused_unless_overwritten(
    one_worker, tiny_bert_dir, small_bert_dir, data_csv, tmp_path
):
    out = tmp_path / "out"
    shutil.copytree(one_worker.out_dir, out)
    other_data = _write_csv(tmp_path / "other.csv", seed=1)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    with pytest.raises(ValueError, match=r"another job \(different: settings\).*overwrite=True"):
        explain_dataset(data_csv, out, str(tiny_bert_dir), METHODS, metrics=True, seed=1, **OPTIONS)
    with pytest.raises(ValueError, match=r"different: data\)"):
        explain_dataset(other_data, out, str(tiny_bert_dir), METHODS, metrics=True, **OPTIONS)
    with pytest.raises(ValueError, match=r"different: model\)"):  # 64 tokens: the tiny BERT's default
        explain_dataset(data_csv, out, str(small_bert_dir), METHODS, metrics=True, max_length=64, **OPTIONS)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing touched
    result = explain_dataset(data_csv, out, str(tiny_bert_dir), ["Att"], overwrite=True, **OPTIONS)
    assert result.computed == [0, 1, 2] and result.status.complete
    assert "Shapley-Grad-Att-Max-Mutual" not in result.read_tokens().column_names
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"]["methods"] == ["Att"] and manifest["n_shards"] == 3


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(text_column="body"), r"text_column 'body' is not a column .*\['text', 'label'\]"),
        (dict(label_column="gold"), r"label_column 'gold' is not a column"),
        (dict(methods=["no-such-method"]), r"unknown method 'no-such-method'"),
        (dict(shard_size=10), r"shard_size 10 is not a multiple of batch_size 4.*shard_size=8"),
        (dict(batch_size=0), r"batch_size must be a positive integer, got 0"),
        (dict(engine="spark"), r"Unknown engine 'spark'"),
        (dict(workers=0), r"workers must be a positive integer"),
        (dict(colour="red"), r"Unknown job option\(s\) \['colour'\]"),
        (dict(empty=True), r"has no rows"),
        (dict(max_length=65), r"max_length 65 is more than the 64 positions BertForSequenceClassification"),
        (dict(input="missing.csv"), r"is not a file"),
        (dict(input="data.txt"), r"cannot tell its format from the suffix '.txt'"),
    ],
)
def test_bad_input_fails_before_any_work(change, message, tiny_bert_dir, data_csv, tmp_path):
    change = dict(change)
    source = data_csv
    if change.pop("empty", False):
        source = tmp_path / "empty.csv"
        source.write_text("text,label\n")
    if "input" in change:
        source = tmp_path / change.pop("input")
        if source.suffix == ".txt":
            source.write_text("a text\n")
    kwargs = {**OPTIONS, "methods": METHODS, **change}
    with pytest.raises(ValueError, match=message):
        explain_dataset(source, tmp_path / "out", str(tiny_bert_dir), **kwargs)
    assert not (tmp_path / "out").exists()


def test_spec_round_trips_and_fixes_the_shards(tiny_bert_dir, data_csv):
    spec = JobSpec(str(data_csv), str(tiny_bert_dir), ("grad_att_max_mutual", "att"), batch_size=4, shard_size=8)
    assert spec.methods == ("Shapley-Grad-Att-Max-Mutual", "Att")
    assert JobSpec.from_json(spec.to_json()) == spec
    assert [(s.start, s.stop) for s in plan_shards(spec)] == [(0, 8), (8, 16), (16, 20)]
    assert JobSpec(str(data_csv), str(tiny_bert_dir), batch_size=4).shard_size == 64  # 16 batches by default
    assert spec.fingerprint() == JobSpec.from_json(spec.to_json()).fingerprint()


def test_jsonl_and_parquet_inputs_give_the_csv_job(one_worker, tiny_bert_dir, data_csv, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = _texts(data_csv)
    jsonl = tmp_path / "tweets.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n" for i, t in enumerate(texts)))
    parquet = tmp_path / "tweets.parquet"
    pq.write_table(pa.table({"text": texts, "label": [i % 2 for i in range(len(texts))]}), str(parquet))
    for path in (jsonl, parquet):
        result = explain_dataset(
            path, tmp_path / path.suffix[1:], str(tiny_bert_dir), METHODS, metrics=True, **OPTIONS
        )
        assert result.read_tokens().equals(one_worker.read_tokens()), path.suffix


def _user_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_cli_end_to_end_and_status(tiny_bert_dir, data_csv, tmp_path, capsys):
    out = tmp_path / "job"
    argv = ["explain-dataset", str(data_csv), "--out", str(out), "--model", str(tiny_bert_dir)]
    argv += ["--methods", "att", "grad-sam", "--batch-size", "4", "--shard-size", "8", "--no-progress"]
    assert main(argv) == 0
    assert "3/3 shards, 20/20 examples" in capsys.readouterr().out
    table = _read_table(out / "shard-00000.parquet")
    assert {"Att", "Grad-SAM", "token", "start", "end"} <= set(table.column_names)
    (out / "shard-00001.parquet").unlink()
    assert main(["explain-dataset", "--status", str(out)]) == 0
    assert "2/3 shards, 12/20 examples" in capsys.readouterr().out
    assert main(argv) == 0 and "(1 shards computed now)" in capsys.readouterr().out
    err = _user_error(argv[:-1] + ["--seed", "3"], capsys)
    assert "holds the results of another job (different: settings)" in err
    err = _user_error(argv + ["--text-column", "body"], capsys)
    assert "text_column 'body' is not a column" in err
    err = _user_error(["explain-dataset", "--status", str(tmp_path)], capsys)
    assert "holds no manifest.json" in err
    err = _user_error(["explain-dataset", str(data_csv), "--model", str(tiny_bert_dir)], capsys)
    assert "--out DIR is required" in err
    err = _user_error(argv + ["--methods", "nonsense"], capsys)
    assert "unknown method 'nonsense'" in err
    err = _user_error(argv + ["--address", "auto"], capsys)
    assert "--address 'auto' is for --engine ray" in err


def test_cli_address_reaches_the_ray_engine(tiny_bert_dir, data_csv, tmp_path, monkeypatch, capsys):
    from captum_attn_shapley.jobs import local as local_run
    from captum_attn_shapley.jobs import ray_engine

    seen = {}

    def run(spec, out_dir, workers, **options):  # the local engine, recording what the Ray engine was given
        seen.update(options, workers=workers)
        return local_run.run(spec, out_dir, 1, progress=False)

    monkeypatch.setattr(ray_engine, "run", run)
    argv = ["explain-dataset", str(data_csv), "--out", str(tmp_path / "job"), "--model", str(tiny_bert_dir)]
    argv += ["--methods", "att", "--engine", "ray", "--workers", "2", "--address", "HEAD:6379", "--no-progress"]
    assert main(argv) == 0
    assert seen == {"address": "HEAD:6379", "progress": False, "workers": 2}


CONCEPTS = {
    "concepts": {
        "praise": ["lovely food", "great service", "on time", "great crew"],
        "complaint": ["rude crew", "flight late", "never again", "late and rude"],
        "filler": ["the and but", "was the", "and on", "but the was"],
    },
    "sets": [["praise", "complaint"], ["praise", "filler"]],
}


def test_tokentcav_job_trains_cavs_once_and_matches_interpret(tiny_bert_dir, data_csv, tmp_path, monkeypatch):
    from captum_attn_shapley import TokenTCAV, text_concept
    from captum_attn_shapley.concept import _cav_store

    concepts = tmp_path / "concepts.json"
    concepts.write_text(json.dumps(CONCEPTS))
    trained = []
    real_train = _cav_store.train_relative_cavs

    def counting(concepts, layer, *args, **kwargs):
        trained.append(([c.name for c in concepts], layer))
        return real_train(concepts, layer, *args, **kwargs)

    monkeypatch.setattr(_cav_store, "train_relative_cavs", counting)
    options = dict(concepts=str(concepts), layers=[0, 1], targets=[0, 1], repeats=3, cav_dir=str(tmp_path / "cav"))
    result = explain_dataset(data_csv, tmp_path / "out", str(tiny_bert_dir), **OPTIONS, **options)
    assert result.computed == [0, 1, 2] and result.status.complete
    assert len(trained) == 4  # 2 sets x 2 layers, once, before the shards (which load them)
    table = result.read_tokens().to_pydict()
    assert len(table["example"]) == 20 * 2 * 2 and len(table["scores"][0]) == 2 * 2 * 3  # 2 sets x 2 concepts x R
    rows = json.loads((tmp_path / "out" / "tcav.json").read_text())

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    made = {
        n: text_concept(i, n, t, tokenizer, batch_size=4) for i, (n, t) in enumerate(CONCEPTS["concepts"].items())
    }
    sets = [[made[n] for n in names] for names in CONCEPTS["sets"]]
    tcav = TokenTCAV(model, layers=[0, 1], save_path=str(tmp_path / "cav"), repeats=3, batch_size=20)
    enc = tokenizer(_texts(data_csv), padding=True, return_tensors="pt")
    for target in (0, 1):
        direct = tcav.interpret(
            enc["input_ids"], sets, target=target, additional_forward_args=(enc["attention_mask"],)
        )
        expected = direct.rows()
        got = [r for r in rows if r["target"] == target]
        assert [(r["concept_set"], r["concept"], r["layer"]) for r in got] == [
            (r["concept_set"], r["concept"], r["layer"]) for r in expected
        ]
        for mine, theirs in zip(got, expected):
            assert mine["t_tcav"] == pytest.approx(theirs["t_tcav"], abs=1e-9)
            assert mine["magnitude"] == pytest.approx(theirs["magnitude"], rel=1e-4, abs=1e-7)
            assert mine["p_value"] == pytest.approx(theirs["p_value"], rel=1e-6, nan_ok=True)
    assert len(trained) == 4  # the direct run loaded the job's CAVs
    assert "Target: class 1" in (tmp_path / "out" / "tcav.md").read_text()


def test_cli_tokentcav_job(tiny_bert_dir, data_csv, tmp_path, capsys):
    concepts = tmp_path / "concepts.json"
    concepts.write_text(json.dumps(CONCEPTS))
    argv = ["explain-dataset", str(data_csv), "--out", str(tmp_path / "job"), "--model", str(tiny_bert_dir)]
    argv += ["--batch-size", "4", "--shard-size", "8", "--no-progress", "--concepts", str(concepts)]
    assert "--concepts needs --layers" in _user_error(argv, capsys)
    argv += ["--layers", "-1", "--repeats", "2", "--cav-dir", str(tmp_path / "cav")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "3/3 shards, 20/20 examples" in out and "Target: the predicted class" in out
    rows = json.loads((tmp_path / "job" / "tcav.json").read_text())
    assert {r["concept"] for r in rows} == {"praise", "complaint", "filler"} and {r["target"] for r in rows} == {
        -1
    }
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"concepts": {"a": ["x"]}, "sets": [["a", "b"]]}))
    err = _user_error(argv[:-8] + ["--concepts", str(bad), "--layers", "1"], capsys)
    assert "names unknown concepts ['b']" in err
