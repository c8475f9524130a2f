"""The Ray and torchrun engines of dataset jobs (captum_attn_shapley.jobs.ray_engine, .torchrun_engine,
.torchrun_worker): with 2 workers each, and a worker killed once in the middle of the job, their files are
bit-identical to the local engine's in one process (the reference: the same Parquet tables); torchrun's ranks
split the shards statically; Ray's local instance keeps its folders in the job's folder and writes nothing
under the home folder; bad options fail before any work.

Marked ``jobs`` (as tests/test_jobs.py): they start Ray and torchrun (under two minutes on 2 cores) and run
in the captum 0.9 environment, which installs the ``jobs`` extra (scripts/test.sh deselects them in the
captum 0.8 one; the module imports neither pyarrow nor ray when collected).
"""

import csv
import json
import os
import pathlib
import random
import shutil
import sys
import tempfile

import pytest

from captum_attn_shapley.jobs import (
    JobSpec,
    explain_dataset,
    plan_shards,
    ray_engine,
    torchrun_engine,
    torchrun_worker,
)
from captum_attn_shapley.jobs._faults import CRASH_ENV, maybe_crash

pytestmark = pytest.mark.jobs

METHODS = ["Shapley-Grad-Att-Max-Mutual", "Att"]
WORDS = "the crew was rude and the flight late but lovely food great service never again on time".split()
# 16 examples, 4 per batch and per shard: 4 shards, two for each of 2 workers
OPTIONS = dict(batch_size=4, shard_size=4, max_length=32, label_column="label", progress=False)
CRASHED_SHARD = 1


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "tweets.csv"
    rng = random.Random(1)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(16):
            writer.writerow([" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 14))), i % 2])
    return path


@pytest.fixture(scope="module")
def local_job(tiny_bert_dir, data_csv, tmp_path_factory):
    """The job computed by the local engine in this process: the reference."""
    out = tmp_path_factory.mktemp("local") / "out"
    return explain_dataset(data_csv, out, str(tiny_bert_dir), METHODS, **OPTIONS)


def _assert_same_files(reference: pathlib.Path, other: pathlib.Path) -> None:
    import pyarrow.parquet as pq  # here, so that the module is collected (and deselected) without the extra

    names = sorted(p.name for p in reference.glob("*.parquet"))
    assert names == sorted(p.name for p in other.glob("*.parquet"))
    assert len(names) == 2 * len(plan_shards(JobSpec.from_json(json.dumps(_manifest(reference)["spec"]))))
    for name in names:
        expected, got = pq.read_table(reference / name), pq.read_table(other / name)
        assert got.equals(expected), name  # bit-identical values, same schema and row order
    assert (other / "_SUCCESS").is_file()


def _manifest(out: pathlib.Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_ray_two_workers_are_identical_to_one_process_after_a_worker_dies(
    local_job, tiny_bert_dir, data_csv, tmp_path, monkeypatch
):
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ENV, f"{CRASHED_SHARD}:{marker}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # Ray's processes inherit it
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "ray-out"
    result = explain_dataset(
        data_csv, out, str(tiny_bert_dir), METHODS, engine="ray", workers=2,
        engine_options={"max_retries": 2}, **OPTIONS,
    )  # fmt: skip
    assert marker.is_file()  # the worker computing shard 1 exited: the shard was retried on another
    assert result.computed == [0, 1, 2, 3]
    _assert_same_files(local_job.out_dir, out)
    assert not (out / ray_engine.RAY_DIR).exists()  # the local instance's folder, removed after success
    assert not (tmp_path / "home" / ".ray").exists()  # no token written under the home folder
    assert "RAY_AUTH_TOKEN" not in os.environ and "RAY_AUTH_MODE" not in os.environ


def test_torchrun_two_processes_are_identical_to_one_process_after_a_rank_dies(
    local_job, tiny_bert_dir, data_csv, tmp_path, monkeypatch
):
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ENV, f"{CRASHED_SHARD}:{marker}")
    out = tmp_path / "torchrun-out"
    result = explain_dataset(
        data_csv, out, str(tiny_bert_dir), METHODS, engine="torchrun", workers=2,
        engine_options={"max_restarts": 2, "keep_log": True}, **OPTIONS,
    )  # fmt: skip
    assert marker.is_file()
    assert result.computed == [0, 1, 2, 3]
    _assert_same_files(local_job.out_dir, out)
    log = (out / torchrun_engine.TORCHRUN_DIR / "launcher.log").read_text()
    # rank 1 exited with status 1 at shard 1; the launcher restarted the group, which finished the job
    assert "failed (exitcode: 1) local_rank: 1" in log
    spec = JobSpec.from_json((out / torchrun_engine.TORCHRUN_DIR / "spec.json").read_text())
    assert spec == local_job.spec


CONCEPTS = {
    "concepts": {
        "praise": ["lovely food", "great service", "on time"],
        "complaint": ["rude crew", "flight late", "never again"],
        "filler": ["the and but", "was the", "the the"],
    },
    "sets": [["praise", "complaint"], ["praise", "filler"]],
}


def test_torchrun_tokentcav_job_is_identical_to_one_process(tiny_bert_dir, data_csv, tmp_path):
    # explain_dataset trains the CAVs once (into c2); the two ranks form a gloo group, rank 0 loads them while
    # rank 1 waits, both score their shards; the summary over all shards is the same as one process's
    concepts = tmp_path / "concepts.json"
    concepts.write_text(json.dumps(CONCEPTS))
    options = dict(OPTIONS, concepts=str(concepts), layers=[0, 1], targets=[0, 1], repeats=2)
    model = str(tiny_bert_dir)
    local = explain_dataset(data_csv, tmp_path / "local", model, cav_dir=str(tmp_path / "c1"), **options)
    out = tmp_path / "torchrun"
    result = explain_dataset(
        data_csv, out, model, engine="torchrun", workers=2, cav_dir=str(tmp_path / "c2"), **options
    )
    assert result.computed == [0, 1, 2, 3]
    _assert_same_files(local.out_dir, out)
    assert (out / "tcav.json").read_text() == (local.out_dir / "tcav.json").read_text()


def test_torchrun_worker_ranks_take_every_world_size_th_shard(local_job, tmp_path, monkeypatch):
    # the worker run in this process as rank 1 then rank 0 of 2, reading the local job's manifest as its spec
    out = tmp_path / "ranks"
    spec_file = str(local_job.out_dir / "manifest.json")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert torchrun_worker.main([spec_file, str(out)]) == 0
    assert sorted(p.name for p in out.glob("shard-*.parquet")) == ["shard-00001.parquet", "shard-00003.parquet"]
    assert not (out / "_SUCCESS").exists()
    assert torchrun_worker.rank_shards(local_job.spec, str(out), 0, 2) == [0, 2]
    assert torchrun_worker.rank_shards(local_job.spec, str(out), 1, 2) == []
    monkeypatch.setenv("RANK", "0")
    assert torchrun_worker.main([spec_file, str(out)]) == 0
    _assert_same_files(local_job.out_dir, out)
    assert _manifest(out)["fingerprint"] == _manifest(local_job.out_dir)["fingerprint"]


def test_torchrun_worker_refuses_another_jobs_folder_and_bad_arguments(local_job, tmp_path, capsys):
    other = JobSpec.from_json(json.dumps({**json.loads(local_job.spec.to_json()), "seed": 1}))
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(other.to_json())
    assert torchrun_worker.main([str(spec_file), str(local_job.out_dir)]) == 2
    assert "holds the results of another job (different: settings)" in capsys.readouterr().err
    assert torchrun_worker.main([str(tmp_path / "missing.json"), str(tmp_path)]) == 2
    assert "is not a file: write one with JobSpec(...).to_json()" in capsys.readouterr().err
    assert torchrun_worker.main([str(spec_file)]) == 2
    assert torchrun_worker.USAGE in capsys.readouterr().err


def test_engines_with_nothing_pending_start_nothing(local_job):
    import ray

    assert ray_engine.run(local_job.spec, local_job.out_dir, workers=2) == []
    assert not ray.is_initialized() and not (local_job.out_dir / ray_engine.RAY_DIR).exists()
    assert torchrun_engine.run(local_job.spec, local_job.out_dir, workers=2) == []
    assert not (local_job.out_dir / torchrun_engine.TORCHRUN_DIR).exists()


def test_torchrun_command_runs_the_worker_module_with_this_interpreter():
    cmd = torchrun_engine.command("s.json", "out", 3, 2, ["--monitor-interval", "1"])
    assert cmd == [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "3",
        "--max-restarts", "2", "--monitor-interval", "1", "-m", "captum_attn_shapley.jobs.torchrun_worker",
        "s.json", "out", "--no-summary",
    ]  # fmt: skip


def test_ray_temp_folder_gets_a_short_link_when_too_long_for_sockets(tmp_path):
    long = tmp_path / ("x" * 60) / "out" / ray_engine.RAY_DIR
    with ray_engine._short_path(long) as path:
        assert len(path) + ray_engine._SOCKET_SUFFIX <= ray_engine._SOCKET_PATH_MAX
        assert pathlib.Path(path).resolve() == long.resolve()
        link_holder = pathlib.Path(path).parent
    assert not link_holder.exists() and long.is_dir()
    short = pathlib.Path(tempfile.mkdtemp(prefix="j", dir="/tmp")) / ray_engine.RAY_DIR
    with ray_engine._short_path(short) as path:
        assert path == str(short)  # short enough: used as it is
    shutil.rmtree(short.parent)


@pytest.mark.parametrize(
    "engine, options, message",
    [
        (ray_engine, {"workers": 0}, "workers must be a positive integer, got 0"),
        (ray_engine, {"max_retries": -1}, "max_retries must be an integer, 0 or more"),
        (ray_engine, {"address": ""}, "address must be a Ray cluster's address such as 'auto'"),
        (torchrun_engine, {"workers": True}, "workers must be a positive integer, got True"),
        (torchrun_engine, {"max_restarts": 1.5}, "max_restarts must be an integer, 0 or more"),
        (torchrun_engine, {"launcher_args": "--standalone"}, "launcher_args must be a list of strings"),
    ],
)
def test_bad_engine_options_fail_before_any_work(local_job, tmp_path, engine, options, message):
    with pytest.raises(ValueError, match=message):
        engine.run(local_job.spec, tmp_path / "never", **{"workers": 2, **options})
    assert not (tmp_path / "never").exists()


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r'engine=.ray. needs Ray: pip install "captum-attn-shapley\[jobs\]"'):
        ray_engine.require_ray()


def test_crash_fault_exits_once_for_its_shard_only(tmp_path, monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "not-a-shard")
    with pytest.raises(ValueError, match="is not INDEX:MARKER"):
        maybe_crash(0)
    marker = tmp_path / "m"
    marker.write_text("")  # already crashed once: the retry goes through
    monkeypatch.setenv(CRASH_ENV, f"2:{marker}")
    maybe_crash(2)
    maybe_crash(1)


class _FakeRay:
    """Records ray.init's arguments and the environment the local instance would inherit."""

    def __init__(self):
        self.calls = []

    def is_initialized(self):
        return False

    def init(self, **kwargs):
        env = {k: os.environ.get(k) for k in ("RAY_worker_niceness", "RAY_AUTH_TOKEN", "RAY_USAGE_STATS_ENABLED")}
        self.calls.append((kwargs, env))

    def shutdown(self):
        self.calls.append("shutdown")


def test_ray_session_settings_of_a_local_instance_and_of_a_cluster(tmp_path, monkeypatch):
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS", "RAY_worker_niceness"):
        monkeypatch.delenv(name, raising=False)
    fake = _FakeRay()
    out = pathlib.Path(tempfile.mkdtemp(prefix="j", dir="/tmp"))  # short: Ray's folder used as it is
    with ray_engine._ray_session(fake, out, 3, None, {}) as local:
        assert local
    (kwargs, env), last = fake.calls
    assert kwargs["_temp_dir"] == str(out / ".ray") and kwargs["object_spilling_directory"] == str(
        out / ".ray/spill"
    )
    assert kwargs["num_cpus"] == 3 and kwargs["include_dashboard"] is False and last == "shutdown"
    assert env["RAY_worker_niceness"] == "0" and env["RAY_USAGE_STATS_ENABLED"] == "0" and env["RAY_AUTH_TOKEN"]
    assert "RAY_worker_niceness" not in os.environ and "RAY_AUTH_TOKEN" not in os.environ  # restored
    shutil.rmtree(out)
    # RAY_ADDRESS (the command line's way to a cluster) or address=: connect, start nothing, set nothing
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    fake = _FakeRay()
    with ray_engine._ray_session(fake, tmp_path, 3, None, {"runtime_env": {}}) as local:
        assert not local
    (kwargs, env), _ = fake.calls
    assert kwargs == {"address": "ray://head:10001", "runtime_env": {}}
    assert env == {"RAY_worker_niceness": None, "RAY_AUTH_TOKEN": None, "RAY_USAGE_STATS_ENABLED": None}
    assert not (tmp_path / ".ray").exists()
