"""Atomic writes: content, encoding, permissions and no temporary file left behind."""

import os

from captum_attn_shapley._utils.io import atomic_write_text


def test_atomic_write_replaces_the_file_like_a_plain_write(tmp_path):
    target = tmp_path / "sub" / "summary.md"
    atomic_write_text(target, "old")
    atomic_write_text(target, "p = 0.5 – ✓\n")
    assert target.read_text(encoding="utf-8") == "p = 0.5 – ✓\n"
    plain = tmp_path / "plain.md"
    with open(plain, "w") as handle:
        handle.write("x")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # 0o666 less the umask
    assert sorted(os.listdir(target.parent)) == ["summary.md"]
