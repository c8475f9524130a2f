"""The code examples of the README and of the getting-started page run as printed (offline, embedded models)."""

import pathlib
import re

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = ["README.md", "docs/getting_started.md"]


def _python_blocks(page: str):
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(), re.S)


def test_the_pages_have_examples():
    assert all(len(_python_blocks(page)) >= 2 for page in PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_the_examples_run(page, default_classifier, texture_classifier, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    for code in _python_blocks(page):
        namespace: dict = {}
        exec(compile(code, f"{page} example", "exec"), namespace)
        if "attributions" in namespace:  # the text example: efficiency holds, special tokens get 0
            assert float(namespace["delta"].abs().max()) < 1e-5
            ids = namespace["enc"]["input_ids"][0]
            special = torch.isin(ids, torch.tensor(namespace["tokenizer"].all_special_ids))
            assert torch.all(namespace["attributions"][0][special] == 0)
        if "patches" in namespace:  # the image example: one score per patch of the 8 x 8 grid
            assert tuple(namespace["patches"].shape[-2:]) == (8, 8)
