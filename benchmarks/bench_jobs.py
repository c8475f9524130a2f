#!/usr/bin/env python3
"""Scaling of dataset jobs on this machine: the local engine, Ray and torchrun with 1 and 2 workers.

Each configuration runs ``explain_dataset`` on the same input (N tweets of the embedded data, as Parquet)
with the embedded MiniLM classifier (or ``--model DIR``), in a fresh Python process, while this script
samples the memory (RSS) of that process and of every worker under it every 0.2 s. Reported per run:
wall time of the whole process (imports, model fingerprint, engine start-up, computation), the job's own
time (manifest written to last shard file: what the workers took, start-up included), examples/s over
that, the peak RSS of the driver and of the largest worker, and whether its shard files equal those of
the first run (``pyarrow.Table.equals``, file by file).

Then the per-batch cost in one process with one torch thread (the default of a job): ``run_shard`` on one
shard to load and warm up, then on the next shards, timed; and a projection of examples/s per worker
(``batch_size`` / seconds per batch) for MiniLM and, on paper, BERT-base (see the results file).

    python benchmarks/bench_jobs.py --n 2000 --out benchmarks/results/jobs.md
"""

import argparse
import json
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

import psutil
import torch

WORKER_MARKS = ("spawn_main", "ray::", "default_worker.py", "torchrun_worker")


def _data(path: pathlib.Path, n: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from captum_attn_shapley.demos.datasets import load_tweets

    tweets = load_tweets("all", n_per_class=n // 2, seed=0)
    pq.write_table(pa.table({"text": tweets.texts, "label": tweets.labels}), str(path))


def _model(given: Optional[str]) -> str:
    if given:
        return given
    from captum_attn_shapley.demos.default_model import load_default_classifier

    return str(load_default_classifier(progress=False)[2]["name_or_path"])


def _child(args: argparse.Namespace) -> None:
    """One job, in this (fresh) process."""
    from captum_attn_shapley.jobs import explain_dataset

    result = explain_dataset(
        args.data, args.job, args.model, args.methods, engine=args.engine, workers=args.workers,
        batch_size=args.batch_size, shard_size=args.shard_size, max_length=args.max_length, progress=False,
    )  # fmt: skip
    print(json.dumps({"elapsed_s": result.status.elapsed_s, "complete": result.status.complete}))


def _sample(process: "subprocess.Popen[str]") -> Dict[str, float]:
    """Waits for the process, sampling the RSS of it and of its workers; peaks in MiB."""
    root = psutil.Process(process.pid)
    driver = worker = 0.0
    while process.poll() is None:
        try:
            driver = max(driver, root.memory_info().rss)
            for child in root.children(recursive=True):
                try:
                    cmd = " ".join(child.cmdline())
                    if any(mark in cmd for mark in WORKER_MARKS):
                        worker = max(worker, child.memory_info().rss)
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        time.sleep(0.2)
    return {"driver_mib": driver / 2**20, "worker_mib": worker / 2**20}


def _same(reference: pathlib.Path, other: pathlib.Path) -> bool:
    import pyarrow.parquet as pq

    names = sorted(p.name for p in reference.glob("*.parquet"))
    if names != sorted(p.name for p in other.glob("*.parquet")):
        return False
    return all(pq.read_table(reference / n).equals(pq.read_table(other / n)) for n in names)


def _per_batch(args: argparse.Namespace, work: pathlib.Path) -> Dict[str, float]:
    """Seconds per batch of run_shard in this process, one torch thread, after a warm-up shard."""
    from captum_attn_shapley.jobs import plan_shards, run_shard
    from captum_attn_shapley.jobs.spec import make_spec

    spec = make_spec(
        str(args.data), args.model, args.methods, batch_size=args.batch_size, shard_size=args.shard_size,
        max_length=args.max_length,
    )  # fmt: skip
    out = work / "per-batch"
    run_shard(spec, 0, out)
    shards = plan_shards(spec)[1 : 1 + args.timed_shards]
    start = time.perf_counter()
    for shard in shards:
        run_shard(spec, shard.index, out)
    seconds = time.perf_counter() - start
    examples = sum(s.stop - s.start for s in shards)
    batches = sum(-(-(s.stop - s.start) // args.batch_size) for s in shards)
    return {"seconds_per_batch": seconds / batches, "examples_per_s": examples / seconds, "batches": batches}


def _report(args: argparse.Namespace, runs: List[Dict[str, Any]], cost: Dict[str, float]) -> str:
    lines = [
        "# Dataset jobs: scaling on this machine",
        "",
        f"`python benchmarks/bench_jobs.py --n {args.n}` on {platform.machine()}, {psutil.cpu_count()} CPU cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}, torch "
        f"{torch.__version__}; model `{pathlib.Path(args.model).name}` ({args.model_label}); methods "
        f"{', '.join(args.methods)}; batch_size {args.batch_size}, shard_size {args.shard_size}, max_length "
        f"{args.max_length}, 1 torch thread per worker; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "| engine | workers | wall (s) | job (s) | examples/s (job) | peak RSS driver (MiB) | peak RSS per worker "
        "(MiB) | files equal to the first run |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in runs:
        worker = f"{r['worker_mib']:.0f}" if r["worker_mib"] else "(in the driver)"
        lines.append(
            f"| {r['engine']} | {r['workers']} | {r['wall_s']:.1f} | {r['elapsed_s']:.1f} | "
            f"{args.n / r['elapsed_s']:.1f} | {r['driver_mib']:.0f} | {worker} | {'yes' if r['same'] else 'NO'} |"
        )
    lines += [
        "",
        f"Per-batch cost in one process, 1 torch thread, after a warm-up shard: "
        f"{cost['seconds_per_batch']:.3f} s per batch of {args.batch_size} ({cost['batches']:.0f} batches timed), "
        f"{cost['examples_per_s']:.1f} examples/s per worker.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="examples (tweets, balanced)")
    parser.add_argument("--model", default=None, help="model directory (default: the embedded MiniLM classifier)")
    parser.add_argument("--methods", nargs="+", default=["Shapley-Grad-Att-Max-Mutual"])
    parser.add_argument("--engines", nargs="+", default=["local", "ray", "torchrun"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--shard-size", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--timed-shards", type=int, default=2, help="shards timed for the per-batch cost")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="markdown results file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=pathlib.Path, help=argparse.SUPPRESS)
    parser.add_argument("--job", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.workers = args.workers[0]
        _child(args)
        return
    args.model_label = "given" if args.model else "the embedded sentiment classifier, all-MiniLM-L6-v2"
    args.model = _model(args.model)
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    args.data = work / "tweets.parquet"
    _data(args.data, args.n)
    runs: List[Dict[str, Any]] = []
    try:
        for engine in args.engines:
            for workers in args.workers:
                job = work / f"{engine}-{workers}"
                cmd = [sys.executable, __file__, "--child", "--engine", engine, "--workers", str(workers)]
                cmd += ["--data", str(args.data), "--job", str(job), "--model", args.model]
                cmd += ["--methods", *args.methods]
                cmd += ["--batch-size", str(args.batch_size), "--shard-size", str(args.shard_size)]
                cmd += ["--max-length", str(args.max_length)]
                start = time.perf_counter()
                process = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
                memory = _sample(process)
                wall = time.perf_counter() - start
                stdout = process.stdout.read() if process.stdout else ""
                if process.returncode != 0:
                    raise SystemExit(f"{engine} with {workers} workers failed (status {process.returncode})")
                status = json.loads(stdout.strip().splitlines()[-1])
                same = _same(work / f"{runs[0]['engine']}-{runs[0]['workers']}", job) if runs else True
                runs.append(dict(engine=engine, workers=workers, wall_s=wall, same=same, **status, **memory))
                print(runs[-1], flush=True)
        torch.set_num_threads(1)
        cost = _per_batch(args, work)
        print(cost)
        text = _report(args, runs, cost)
        print(text)
        if args.out:
            args.out.write_text(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
