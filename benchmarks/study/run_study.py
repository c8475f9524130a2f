#!/usr/bin/env python3
"""The pre-registered faithfulness study of issue 17 (benchmarks/study/PROTOCOL.md).

Runs every method the package has on one split, through the package's comparison runner
(:func:`captum_attn_shapley.evaluation.run_comparison`, resumable per method), and writes ``study.json``
and ``study.md``: means with Student t 95 % intervals, paired differences against AttnLRP and against the
best peer of each metric, F1@20 %, planted-token AUPRC, time ÷ the fused floor.

    python benchmarks/study/run_study.py --split dev --out benchmarks/study/results/dev
    python benchmarks/study/run_study.py --split dev --ablations layers --out benchmarks/study/results/dev
    python benchmarks/study/run_study.py --split dev --ablations heads --out benchmarks/study/results/dev
    python benchmarks/study/run_study.py --split test --out benchmarks/study/results/test

``--split test`` needs ``benchmarks/study/choice.json`` committed unchanged (the choice made on dev) and
refuses to run again once its ``study.json`` exists.
"""

import argparse
import importlib.util
import json
import pathlib
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

import torch

torch.set_num_threads(1)  # PROTOCOL.md, amendment 4: one thread per process on the shared machine
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _methods import EXPENSIVE, FLOORS, PEERS, game_spec, head_specs, text_methods  # noqa: E402
from _stats import PerExample, best_of, choose_candidate, decision, interval, table, time_ratio  # noqa: E402
from _timing import interleaved_ratios  # noqa: E402

from captum_attn_shapley.capture import text_player_mask  # noqa: E402
from captum_attn_shapley.demos import load_classifier, load_planted_classifier  # noqa: E402
from captum_attn_shapley.demos.datasets import load_tweets  # noqa: E402
from captum_attn_shapley.demos.planted import make_planted_dataset, planted_token_mask, token_recovery  # noqa: E402
from captum_attn_shapley.evaluation import ComparisonResult, run_comparison  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
CHOICE = HERE / "choice.json"
#: PROTOCOL.md, "Models and data".
TWEETS = {"dev": range(0, 200), "test": range(500, 650)}
PLANTED_SEED = {"dev": 2000, "test": 3000}
N_PLANTED = {"dev": 100, "test": 60}
EXPENSIVE_TWEETS = {"dev": 20, "test": 20}
EXPENSIVE_PLANTED = {"dev": 10, "test": 10}
#: Ablations: the first dev tweets of the per-head ablation.
HEAD_TWEETS = 100


def per_example(result: ComparisonResult, auprc: Optional[Dict[str, List[float]]] = None) -> PerExample:
    per: PerExample = {}
    for row in result.rows:
        entry = per.setdefault(row["method"], {"comprehensiveness": {}, "sufficiency": {}, "seconds": {}})
        for key in ("comprehensiveness", "sufficiency", "seconds"):
            entry[key][int(row["example"])] = float(row[key])
    for name, values in (auprc or {}).items():
        per[name]["auprc"] = dict(enumerate(values))
    return per


def planted_auprc(result: ComparisonResult, flags: List[List[bool]]) -> Dict[str, List[float]]:
    out = {}
    for name, scores in result.attributions.items():
        width = max(len(f) for f in flags)
        n = len(scores)
        attr = torch.zeros(n, width, dtype=torch.float64)
        planted = torch.zeros(n, width, dtype=torch.bool)
        players = torch.zeros(n, width, dtype=torch.bool)
        for i, (values, f) in enumerate(zip(scores, flags[:n])):
            assert len(values) == len(f), name  # same tokenizer and player rule: the same players
            attr[i, : len(values)] = torch.tensor(values, dtype=torch.float64)
            planted[i, : len(f)] = torch.tensor(f)
            players[i, : len(f)] = True
        out[name] = token_recovery(attr, planted, players)["auprc"].tolist()
    return out


def compare(
    model: Any, tok: Any, texts: List[str], labels: List[int], specs: List, out: pathlib.Path, progress: bool
):
    return run_comparison(model, tok, texts, labels, specs, out_dir=out, batch_size=16, seed=0, progress=progress)


#: ``--cache-only --reverse``: a second process that goes through the methods from the end (no duplicate work).
REVERSE = False


def ordered(model: Any, tok: Any, specs: List, extra: List) -> List:
    """The floor, the chosen candidates and AttnLRP first (what the decision reads), the rest, the floor again."""
    specs = specs[:-1] + extra_specs(model, tok, extra, specs) + specs[-1:]
    first = {"Floor", "AttnLRP"} | {c["name"] for c in extra}
    specs = [s for s in specs if s.name in first] + [s for s in specs if s.name not in first]
    return specs[::-1] if REVERSE else specs


def run_text(split: str, out: pathlib.Path, progress: bool, extra: List, which=("tweets", "planted")) -> Dict:
    have_shap = importlib.util.find_spec("shap") is not None
    sets: Dict[str, Any] = {}
    absent: Dict[str, str] = {}
    if "tweets" in which:
        absent = run_tweets(split, out, progress, extra, have_shap, sets)
    if "planted" in which:
        absent = run_planted(split, out, progress, extra, have_shap, sets)
    return {"sets": sets, "absent": absent}


def run_tweets(split: str, out: pathlib.Path, progress: bool, extra: List, have_shap: bool, sets: Dict) -> Dict:
    model, tok, info = load_classifier()
    model.set_attn_implementation("sdpa")
    tweets = load_tweets("test")
    chosen = TWEETS[split]
    specs, absent = text_methods(model, tok, EXPENSIVE_TWEETS[split], have_shap)
    specs = ordered(model, tok, specs, extra)
    began = time.perf_counter()
    result = compare(
        model,
        tok,
        [tweets.texts[i] for i in chosen],
        [tweets.labels[i] for i in chosen],
        specs,
        out / "tweets",
        progress,
    )
    per = per_example(result)
    texts = [tweets.texts[i] for i in chosen]
    sets["tweets"] = {
        "per": per,
        "interleaved": interleaved_ratios(model, tok, texts, timed_specs(specs, per)),
        "f1": {r["method"]: r["f1_at_20"] for r in result.summary},
        "order": [s.name for s in specs],
        "data": f"held-out tweets {chosen.start}-{chosen.stop - 1} of load_tweets('test')",
        "model": info.get("name_or_path"),
        "seconds": time.perf_counter() - began,
    }
    return absent


def run_planted(split: str, out: pathlib.Path, progress: bool, extra: List, have_shap: bool, sets: Dict) -> Dict:
    model, tok, info = load_planted_classifier(progress=progress)
    model.set_attn_implementation("sdpa")
    data = make_planted_dataset(N_PLANTED[split], seed=PLANTED_SEED[split], split="test")
    ids, mask, planted = planted_token_mask(tok, data)
    players = text_player_mask(ids, mask, tok.all_special_ids)
    flags = [planted[i][players[i]].tolist() for i in range(len(data))]
    specs, absent = text_methods(model, tok, EXPENSIVE_PLANTED[split], have_shap)
    specs = ordered(model, tok, specs, extra)
    began = time.perf_counter()
    result = compare(model, tok, data.texts, data.labels, specs, out / "planted", progress)
    per = per_example(result, planted_auprc(result, flags))
    sets["planted"] = {
        "per": per,
        "interleaved": interleaved_ratios(model, tok, data.texts, timed_specs(specs, per)),
        "f1": {r["method"]: r["f1_at_20"] for r in result.summary},
        "order": [s.name for s in specs],
        "data": f"make_planted_dataset({N_PLANTED[split]}, seed={PLANTED_SEED[split]}, split='test')",
        "model": info.get("name_or_path"),
        "seconds": time.perf_counter() - began,
    }
    return absent


def timed_specs(specs: List, per: PerExample) -> List:
    """The methods timed interleaved with the floor: the one-pass methods (runner ratio at most 3)."""
    skip = set(EXPENSIVE) | set(FLOORS) | {"Random"}
    return [s for s in specs if s.name not in skip and time_ratio(per, s.name) <= 3]


def extra_specs(model: Any, tok: Any, extra: List[Dict[str, Any]], present: List) -> List:
    """The chosen candidates that are not among the standard methods (e.g. a layer subset)."""
    names = {s.name for s in present}
    specs = []
    for c in extra:
        spec = game_spec(
            model, list(tok.all_special_ids), c["game"], c["weighting"], c.get("signed", False), c.get("layers")
        )
        if spec.name not in names:
            specs.append(spec)
    return specs


def games_of(order: List[str]) -> List[str]:
    return [m for m in order if m.startswith("Shapley-")]


def report(split: str, run: Dict[str, Any], choice: Optional[Dict[str, Any]]) -> str:
    lines = [f"# Study, {split} split", ""]
    peers = choice["best_peers"] if choice else {}
    for key, s in run["sets"].items():
        per = s["per"]
        metrics = ["comprehensiveness", "sufficiency"] + (["auprc"] if key == "planted" else [])
        if key == "images":
            metrics = ["auprc"]
        if not peers.get(key):
            set_peers = {m: best_of(per, m, PEERS) for m in metrics}
        else:
            set_peers = peers[key]
        refs = {"AttnLRP": {m: "AttnLRP" for m in metrics}, "best peer": set_peers}
        lines += [f"## {key}: {s['data']}", "", f"model: `{s.get('model')}`; best peers: {set_peers}", ""]
        ratios = s.get("interleaved", {}).get("ratios")
        lines += table(per, s["order"], metrics, refs, s.get("f1"), ratios)
        lines += [""]
    if run.get("absent"):
        lines += ["Absent methods: " + "; ".join(f"{k} ({v})" for k, v in run["absent"].items()), ""]
    for key, value in run.get("decisions", {}).items():
        lines += [f"Decision ({key}): `{json.dumps(value)}`", ""]
    return "\n".join(lines)


def committed_choice() -> Dict[str, Any]:
    if not CHOICE.is_file():
        raise SystemExit(f"{CHOICE} is missing: choose the candidate on the dev split and commit it first.")
    status = subprocess.run(
        ["git", "status", "--porcelain", str(CHOICE)], capture_output=True, text=True, cwd=HERE
    )
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(CHOICE)], capture_output=True, cwd=HERE)
    if tracked.returncode != 0 or status.stdout.strip():
        raise SystemExit(
            f"{CHOICE} must be committed unchanged before the test run (git status: {status.stdout!r})."
        )
    return json.loads(CHOICE.read_text())


def ablations(out: pathlib.Path, progress: bool, part: str, best_name: Optional[str] = None) -> None:
    """``layers``: every single layer of the best full-layer game (all dev tweets); ``heads``: every head of
    the two best single layers, Grad-Att weighting of that game (the first HEAD_TWEETS dev tweets)."""
    if best_name is None:
        best = json.loads((out / "study.json").read_text())["proposal"]["best_full_variant"]
    else:
        best = parse_variant(best_name)
    model, tok, _ = load_classifier()
    model.set_attn_implementation("sdpa")
    tweets = load_tweets("test")
    layers = model.config.num_hidden_layers
    special = list(tok.all_special_ids)
    chosen = TWEETS["dev"]
    texts, labels = [tweets.texts[i] for i in chosen], [tweets.labels[i] for i in chosen]
    main_per: PerExample = {}
    for path in sorted((out / "tweets" / "methods").glob("*.json")):  # the dev run's finished methods
        stored = json.loads(path.read_text())
        for row in stored["rows"]:
            entry = main_per.setdefault(row["method"], {"comprehensiveness": {}, "sufficiency": {}, "seconds": {}})
            for key in entry:
                entry[key][int(row["example"])] = float(row[key])
    metrics = ["comprehensiveness", "sufficiency"]
    refs = {"AttnLRP": {m: "AttnLRP" for m in metrics}, "all layers": {m: best["name"] for m in metrics}}
    if part == "layers":
        specs = [
            game_spec(model, special, best["game"], best["weighting"], best.get("signed", False), [i])
            for i in range(layers)
        ]
        floor = text_methods(model, tok, 0, False)[0][0]
        result = compare(model, tok, texts, labels, [floor] + specs, out / "ablation_layers", progress)
        per = {**main_per, **per_example(result)}
        names = [best["name"]] + [s.name for s in specs]
        lines = [f"# Per-layer ablation of {best['name']} (dev tweets {chosen.start}-{chosen.stop - 1})", ""]
        lines += table(per, names, metrics, refs, None)
        scores = {name: gap_of(per, name) for name in names}
        top = sorted(range(layers), key=lambda i: -scores[specs[i].name])[:2]
        summary = {"layers": scores, "top_layers": top, "best": best}
        summary["seconds"] = {s.name: sum(per[s.name]["seconds"].values()) for s in [floor] + specs}
    else:
        top = json.loads((out / "ablation_layers.json").read_text())["top_layers"]
        heads = head_specs(model, special, best["game"], top, model.config.num_attention_heads)
        result = compare(
            model, tok, texts[:HEAD_TWEETS], labels[:HEAD_TWEETS], heads, out / "ablation_heads", progress
        )
        per = {**main_per, **per_example(result)}
        title = (
            f"# Per-head ablation (first {HEAD_TWEETS} dev tweets; Grad-Att, game {best['game']}; layers {top})"
        )
        lines = [title, ""]
        lines += table(
            per, ["AttnLRP", best["name"]] + [s.name for s in heads], metrics, {"AttnLRP": refs["AttnLRP"]}, None
        )
        summary = {"heads": {s.name: gap_of(per, s.name) for s in heads}, "top_layers": top}
    lines += ["", "comprehensiveness - sufficiency (dev): `" + json.dumps(summary) + "`"]
    (out / f"ablation_{part}.json").write_text(json.dumps(summary, indent=1))
    (out / f"ablation_{part}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def gap_of(per: PerExample, name: str) -> float:
    """Mean of comprehensiveness minus sufficiency over a method's examples."""
    comp, suff = per[name]["comprehensiveness"], per[name]["sufficiency"]
    return interval([comp[i] - suff[i] for i in suff])[0]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("dev", "test"), required=True)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    parser.add_argument(
        "--ablations",
        choices=("layers", "heads"),
        default=None,
        help="dev only: the per-layer or per-head ablation",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--best", default=None, help="with --ablations: the game variant to ablate (default: the dev proposal's)"
    )
    parser.add_argument("--reverse", action="store_true", help="with --cache-only: the methods in reverse order")
    parser.add_argument(
        "--cache-only",
        choices=("tweets", "planted"),
        default=None,
        help="run one text set's comparison into --out's resumable cache and stop (a second process beside the "
        "main run; the main run then reuses it): same split, same settings, no report",
    )
    parser.add_argument("--smoke", type=int, default=0, help="dev only: a pipeline check on N examples per set")
    args = parser.parse_args(argv)
    if args.smoke:
        if args.split != "dev" or args.out is None:
            parser.error("--smoke needs --split dev and an --out folder outside the results")
        TWEETS["dev"] = range(0, args.smoke)
        for sizes in (N_PLANTED, EXPENSIVE_TWEETS, EXPENSIVE_PLANTED):
            sizes["dev"] = args.smoke
    out = args.out or HERE / "results" / args.split
    progress = not args.no_progress
    if args.ablations:
        if args.split != "dev":
            parser.error("--ablations runs on the dev split only (never tune on the test split)")
        ablations(out, progress, args.ablations, args.best)
        return 0
    choice = committed_choice() if args.split == "test" else None
    if args.split == "test":
        import _methods

        _methods.SKIP_IG_PAIRWISE = True  # amendment 6
    if args.cache_only:
        global REVERSE
        REVERSE = args.reverse
        run_text(args.split, out, progress, choice["candidates"] if choice else [], (args.cache_only,))
        return 0
    if args.split == "test" and (out / "study.json").exists():
        raise SystemExit(f"{out / 'study.json'} exists: the test split is run once.")
    began = time.perf_counter()
    run = run_text(args.split, out, progress, choice["candidates"] if choice else [])
    if args.split == "test":
        from _images import run_images

        per, meta = run_images(progress)
        order = list(per) + [f"{k} (error)" for k in meta["errors"]]
        run["sets"]["images"] = {
            "per": per,
            "order": order,
            "data": "60 texture images, make_texture_dataset(60, seed=1)",
            **meta,
        }
        level = 1 - 0.05 / len(choice["candidates"])
        run["decisions"] = {
            f"{c['name']} on {key}": decision(
                run["sets"][key]["per"], c["name"], run["sets"][key]["interleaved"]["ratios"], level=level
            )
            for c in choice["candidates"]
            for key in ("tweets", "planted")
        }
    else:
        tweets = run["sets"]["tweets"]["per"]
        ratios = run["sets"]["tweets"]["interleaved"]["ratios"]
        picked = choose_candidate(tweets, games_of(run["sets"]["tweets"]["order"]), ratios)
        best_full = picked["candidate"] or picked["ranking"][0]
        run["proposal"] = {
            **picked,
            "best_full_variant": parse_variant(best_full["method"]),
            "best_peers": {
                "tweets": {m: best_of(tweets, m, PEERS) for m in ("comprehensiveness", "sufficiency")},
                "planted": {
                    m: best_of(run["sets"]["planted"]["per"], m, PEERS)
                    for m in ("comprehensiveness", "sufficiency", "auprc")
                },
            },
            "time_ratios": {m: time_ratio(tweets, m, ratios) for m in tweets},
        }
    run["seconds"] = time.perf_counter() - began
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(run, indent=1, default=str))
    text = report(args.split, run, choice)
    (out / "study.md").write_text(text + "\n")
    print(text)
    return 0


def parse_variant(name: str) -> Dict[str, Any]:
    """``Shapley-[Signed-]<Weighting>-<Game>`` back to its options."""
    rest = name[len("Shapley-") :]
    signed = rest.startswith("Signed-")
    rest = rest[len("Signed-") :] if signed else rest
    for label, weighting in (
        ("Grad-Att-", "grad_attention"),
        ("IG-Att-", "ig_attention"),
        ("LRP-Att-", "lrp_attention"),
        ("Att-", "attention"),
    ):
        if rest.startswith(label):
            game = {"CLS": "cls", "Mutual": "mutual", "Max-Mutual": "max_mutual"}[
                rest[len(label) :].split(" [")[0]
            ]
            return {"name": name, "game": game, "weighting": weighting, "signed": signed}
    raise ValueError(f"not a game variant: {name!r}")


if __name__ == "__main__":
    sys.exit(main())
