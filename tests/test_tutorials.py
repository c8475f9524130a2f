"""The tutorials run from start to end on the embedded default models.

The notebooks are executed with nbclient in a fresh IPython kernel of the interpreter running the tests
(a throw-away kernelspec pointing at ``sys.executable``, so no kernel needs to be installed and a
kernelspec of another environment can never be picked up). Each notebook gets one extra cell, added
here and never stored, that prints a JSON summary of its namespace for the assertions.
"""

import json
import os
import pathlib
import runpy
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "tutorials"
NOTEBOOKS = sorted(p.name for p in TUTORIALS.glob("*.ipynb"))
PROBE_MARK = "TUTORIAL-PROBE:"


def test_quickstart_runs(default_classifier, capsys):
    runpy.run_path(str(TUTORIALS / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "efficiency gap per example" in out
    assert "Shapley-Grad-Att-Max-Mutual" in out and "LayerIntegratedGradients" in out
    assert "'the flight was late and the crew was rude' -> negative" in out


def test_the_tutorial_notebooks_exist():
    assert {
        "01_explain_sentiment_classifier.ipynb",
        "02_token_tcav_vision.ipynb",
        "03_bring_your_own_model.ipynb",
        "04_layers_and_generation.ipynb",
    } <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_are_stored_valid_and_without_outputs(name):
    import nbformat

    nb = nbformat.read(TUTORIALS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)
    assert any(cell.cell_type == "markdown" for cell in nb.cells)
    assert "%matplotlib inline" in code[0].source  # figures render inline whatever MPLBACKEND says


def _execute(name, workdir, probe):
    """Runs the notebook (plus the probe cell); returns the executed notebook and the probe's JSON."""
    import nbformat
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    nb = nbformat.read(TUTORIALS / name, as_version=4)
    probe_cell = f"import json\nprint({PROBE_MARK!r} + json.dumps({probe}, default=lambda o: o.item()))"
    nb.cells.append(nbformat.v4.new_code_cell(probe_cell))
    kernels = workdir / "kernels"
    (kernels / "tutorial-test").mkdir(parents=True)
    (kernels / "tutorial-test" / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "tutorial test kernel",
                "language": "python",
            }
        )
    )
    km = KernelManager(
        kernel_name="tutorial-test", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)])
    )
    env = {key: value for key, value in os.environ.items() if key != "MPLBACKEND"}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p),
    )
    run_dir = workdir / "run"
    run_dir.mkdir()
    client = NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": str(run_dir)}})
    try:
        client.execute(env=env, cleanup_kc=True)  # raises CellExecutionError on any cell error
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.output_type == "stream")
    line = next(line for line in printed.splitlines() if line.startswith(PROBE_MARK))
    nb.cells.pop()
    return nb, json.loads(line[len(PROBE_MARK) :])


def _outputs(nb, kind):
    """All display / result outputs of the notebook that carry the MIME type ``kind``."""
    return [
        o.data[kind]
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if o.output_type in ("display_data", "execute_result") and kind in o.data
    ]


def _stdout(nb):
    return "".join(
        o.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if o.output_type == "stream" and o.name == "stdout"
    )


@pytest.mark.notebook
def test_notebook_01_explains_the_sentiment_classifier(default_classifier, tmp_path):
    probe = """{
        "methods": list(summary.index),
        "summary": summary.reset_index().to_dict("records"),
        "deltas": {name: d.double().abs().max().item() for name, d in deltas.items()},
        "lig_gap": lig_gap,
        "comparison": [row["method"] for row in result.summary],
        "loop_vs_call": float(loop_vs_call),
        "same_for_both": bool(same_for_both),
        "differs": bool(differs),
        "n_tweets": len(tweets),
    }"""
    nb, values = _execute("01_explain_sentiment_classifier.ipynb", tmp_path, probe)
    assert len(_outputs(nb, "image/png")) >= 3  # convergence plot, token heatmaps, plot_comparison
    assert any("Word Importance" in html for html in _outputs(nb, "text/html"))  # Captum's visualize_text
    names = ["Shapley-Att-CLS", "Shapley-Grad-Att-CLS", "Shapley-Grad-Att-Max-Mutual", "LayerIntegratedGradients"]
    assert values["methods"] == names and values["comparison"] == names
    assert values["n_tweets"] == 8
    for row in values["summary"]:
        assert -1 <= row["comprehensiveness ↑"] <= 1 and -1 <= row["sufficiency ↓"] <= 1
        assert 0 <= row["F1@20% ↑"] <= 1 and row["seconds"] > 0
    # efficiency: exact for the attention games, approximate (shrinking with n_steps) for IG
    assert all(values["deltas"][name] < 1e-8 for name in names[:3])
    assert values["lig_gap"][-1] < values["lig_gap"][0]
    assert values["loop_vs_call"] < 1e-6  # the loop and run_comparison agree
    assert values["same_for_both"] and values["differs"]
    assert "|convergence delta| per tweet" in _stdout(nb)


@pytest.mark.notebook
def test_notebook_02_runs_token_tcav_on_the_texture_vit(texture_classifier, tmp_path):
    probe = """{
        "columns": list(table.columns),
        "rows": table.to_dict("records"),
        "layers": list(layer_names),
        "matrix": matrix.tolist(),
        "localisation": localisation.reset_index().to_dict("records"),
    }"""
    nb, values = _execute("02_token_tcav_vision.ipynb", tmp_path, probe)
    assert len(_outputs(nb, "image/png")) >= 4  # images, concepts, T-TCAV matrix, heatmaps, Captum's map
    assert {"t_tcav", "p_value", "p_value_corrected", "p_value_random", "significant"} <= set(values["columns"])
    rows = values["rows"]
    assert len(rows) == 3 * 2 and {r["concept"] for r in rows} == {"striped", "dotted", "zigzag"}
    for row in rows:
        assert 0 <= row["t_tcav"] <= 1
        for key in ("p_value", "p_value_corrected", "p_value_random", "p_value_random_corrected"):
            assert 0 <= row[key] <= 1, (key, row)
    assert "p_value" in _stdout(nb) and "| striped / dotted / zigzag | striped |" in _stdout(nb)
    # the planted concept: striped images depend on "striped" at block 2
    planted = next(r for r in rows if r["concept"] == "striped" and r["layer"] == values["layers"][1])
    assert planted["t_tcav"] > 0.5 and planted["p_value"] < 0.01
    # block 2: each texture class scores highest on its own texture
    block2 = values["matrix"][1]
    assert [max(range(3), key=lambda k: row[k]) for row in block2] == [0, 1, 2]
    block1 = next(r for r in values["localisation"] if r["layer"] == 1)
    assert block1["mass inside the object"] > block1["chance"] + 0.2 and block1["pointing game"] >= 0.7


@pytest.mark.notebook
def test_notebook_03_brings_other_models(default_classifier, texture_classifier, tmp_path):
    probe = """{
        "implementation_after": minilm.config._attn_implementation,
        "sdpa_equals_eager": bool(torch.allclose(phi_sdpa, phi_eager, atol=1e-6)),
        "hooks_equals_eager": bool(torch.allclose(phi_hooks, phi_eager, atol=1e-6)),
        "own_players_gap": delta_own.abs().max().item(),
        "own_players_zero_at_stop_words": bool((phi_own[torch.isin(ids, stop_ids)] == 0).all()),
        "random_models": list(random_models),
        "vit_patches": list(patches["Shapley-Grad-Att-Max-Mutual"].shape),
        "vit_pixels": list(pixels["Grad-SAM"].shape),
        "deit": list(phi.shape),
        "deit_gap": delta.abs().max().item(),
    }"""
    nb, values = _execute("03_bring_your_own_model.ipynb", tmp_path, probe)
    assert len(_outputs(nb, "image/png")) >= 2  # token heatmaps, ViT maps through visualize_image_attr
    out = _stdout(nb)
    assert "attention implementation: 'sdpa'" in out
    assert "switch_to_eager=False -> RuntimeError" in out and "attn_implementation='eager'" in out
    assert "engine: fused" in out
    assert (
        values["implementation_after"] == "sdpa" and values["sdpa_equals_eager"] and values["hooks_equals_eager"]
    )
    assert values["own_players_gap"] < 1e-8 and values["own_players_zero_at_stop_words"]
    assert "Wrapper without model= -> ValueError" in out
    for wrapper in (
        "the model",
        "closure returning logits",
        "ids only (mask inside)",
        "functools.partial",
        "callable object + model=",
    ):
        assert f"{wrapper:<28} same attributions: True" in out
    assert "all players 0" in out  # last layer, pairwise game: only the [CLS] row has gradients
    assert values["random_models"] == ["DistilBERT (random weights)", "RoBERTa (random weights)"]
    assert out.count("zero at special tokens and padding: True") == 2
    assert values["vit_patches"] == [3, 8, 8] and values["vit_pixels"] == [3, 1, 64, 64]
    assert values["deit"] == [3, 8, 8] and values["deit_gap"] < 1e-8


@pytest.mark.notebook
def test_notebook_04_layers_and_generation(default_classifier, recall_lm, tmp_path):
    probe = """{
        "n_layers": len(layer_scores),
        "same_as_layers_k": bool(same_as_layers_k),
        "top_token_by_layer": top_token_by_layer,
        "generated": list(result.output_tokens),
        "result_type": type(result).__name__,
        "summary": summary.reset_index().to_dict("records"),
        "mutual_equals_max_mutual": bool(mutual_equals_max_mutual),
    }"""
    nb, values = _execute("04_layers_and_generation.ipynb", tmp_path, probe)
    assert len(_outputs(nb, "image/png")) >= 2  # the layer-by-layer map, Captum's plot_token_attr
    assert values["n_layers"] == 6 and values["same_as_layers_k"]
    assert len(values["top_token_by_layer"]) == 6
    assert values["result_type"] == "LLMAttributionResult" and len(values["generated"]) == 1
    rows = {row["method"]: row for row in values["summary"]}
    assert set(rows) == {"Shapley-Grad-Att-CLS", "Shapley-Grad-Att-Max-Mutual", "LayerIntegratedGradients"}
    for row in rows.values():
        assert 0 <= row["top token decisive"] <= 1 and row["ms / prompt"] > 0
    # the recall model's answer is decided by known tokens: the CLS game finds one of them on most prompts
    assert rows["Shapley-Grad-Att-CLS"]["top token decisive"] >= 0.5
    assert rows["Shapley-Grad-Att-CLS"]["LIG time / time"] > 1
    assert values["mutual_equals_max_mutual"]
