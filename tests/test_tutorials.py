"""The tutorials run from start to end on the embedded default model."""
import pathlib
import runpy

TUTORIALS = pathlib.Path(__file__).resolve().parent.parent / "tutorials"


def test_quickstart_runs(default_classifier, capsys):
    runpy.run_path(str(TUTORIALS / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "efficiency gap per example" in out
    assert "Shapley-Grad-Att-Max-Mutual" in out and "LayerIntegratedGradients" in out
    assert "'the flight was late and the crew was rude' -> negative" in out
