#!/usr/bin/env python3
"""Train the three embedded models from an empty cache and print their weight digests.

Run it twice (once with ``--load``, which keeps every core busy with other processes while it trains)
and compare the digests: the trainings are reproducible when they are bit-identical. Each run uses its
own, fresh cache directory, so the user's cache is untouched::

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_reproducibility.py --out run-idle.json
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_reproducibility.py --load --out run-loaded.json
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_reproducibility.py \
        --compare run-idle.json run-loaded.json --markdown benchmarks/results/reproducibility.md
"""

import argparse
import json
import multiprocessing
import os
import pathlib
import platform
import sys
import tempfile
import time
from typing import Any, Dict, List


def _busy(stop: Any) -> None:
    x = 0.0
    while not stop.is_set():
        for i in range(100_000):
            x += i * 1e-9


def train_all(cache: pathlib.Path) -> Dict[str, Any]:
    """Train every embedded model into ``cache``; their records and times."""
    os.environ["CAPTUM_ATTN_SHAPLEY_CACHE"] = str(cache)
    from captum_attn_shapley.demos import default_model, planted_model, vision_model

    loaders = {
        "sentiment-minilm-v1": default_model.load_default_classifier,
        "planted-minilm-v1": planted_model.load_planted_classifier,
        "texture-vit-v1": vision_model.load_texture_classifier,
    }
    models = {}
    for name, load in loaders.items():
        start = time.perf_counter()
        _, _, info = load(progress=False)
        training = info["training"]
        models[name] = {
            "weights_sha256": training["weights_sha256"],
            "key_digest": training["key_digest"],
            "accuracy": info["accuracy"],
            "per_class_accuracy": info.get("per_class_accuracy"),
            "seconds": round(time.perf_counter() - start, 1),
            "key": training["key"],
            "cpu_capability": training["cpu_capability"],
        }
        print(
            f"{name}: {training['weights_sha256'][:16]} accuracy {info['accuracy']:.4f} "
            f"({models[name]['seconds']:.0f} s)",
            flush=True,
        )
    return models


def _compare(paths: List[pathlib.Path], markdown: pathlib.Path) -> int:
    runs = [json.loads(p.read_text()) for p in paths]
    names = list(runs[0]["models"])
    lines = [
        "# Reproducibility of the embedded models",
        "",
        "Each run trained the three models from an empty cache (`benchmarks/bench_reproducibility.py`).",
        "",
        "| model | " + " | ".join(f"run {i + 1}: {r['label']}" for i, r in enumerate(runs)) + " | identical |",
        "|---|" + "---|" * len(runs) + "---|",
    ]
    same_everywhere = True
    for name in names:
        digests = [r["models"][name]["weights_sha256"] for r in runs]
        same = len(set(digests)) == 1
        same_everywhere &= same
        cells = [
            f"`{r['models'][name]['weights_sha256'][:16]}` (acc. {r['models'][name]['accuracy']:.4f}, "
            f"{r['models'][name]['seconds']:.0f} s)"
            for r in runs
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {'yes' if same else 'NO'} |")
    key = runs[0]["models"][names[0]]["key"]
    lines += [
        "",
        f"Environment: Python {key['python']}, "
        + ", ".join(f"{k} {v}" for k, v in key["packages"].items())
        + f"; {key['threads']} training threads; CPU capability "
        f"{runs[0]['models'][names[0]]['cpu_capability']}, {runs[0]['cpus']} cores.",
        "",
    ]
    markdown.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0 if same_everywhere else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--load", action="store_true", help="keep every core busy with other processes")
    parser.add_argument("--out", type=pathlib.Path, help="write the run's digests and times as JSON")
    parser.add_argument("--compare", type=pathlib.Path, nargs="+", help="compare runs written with --out")
    parser.add_argument(
        "--cache", type=pathlib.Path, help="train into this (empty) cache directory instead of a temporary one"
    )
    parser.add_argument("--markdown", type=pathlib.Path, default=pathlib.Path("reproducibility.md"))
    args = parser.parse_args()
    if args.compare:
        return _compare(args.compare, args.markdown)
    stop = multiprocessing.Event()
    workers = (
        [multiprocessing.Process(target=_busy, args=(stop,)) for _ in range(os.cpu_count() or 1)]
        if args.load
        else []
    )
    for worker in workers:
        worker.start()
    try:
        with tempfile.TemporaryDirectory(prefix="captum-attn-shapley-cache-") as cache:
            start = time.perf_counter()
            models = train_all(args.cache or pathlib.Path(cache))
            seconds = time.perf_counter() - start
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    run = {
        "label": f"{len(workers)} busy processes" if workers else "idle",
        "load_processes": len(workers),
        "seconds": round(seconds, 1),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "models": models,
    }
    if args.out:
        args.out.write_text(json.dumps(run, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
