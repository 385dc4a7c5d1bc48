"""Outputs appear whole or not at all."""

from __future__ import annotations

import pytest

from lcid.io.atomic import atomic_dir


def test_success_moves_files_into_place(tmp_path):
    with atomic_dir(tmp_path / "out") as staging:
        (staging / "a.txt").write_text("a")
        (staging / "sub").mkdir()
        (staging / "sub" / "b.txt").write_text("b")
    assert (tmp_path / "out" / "a.txt").read_text() == "a"
    assert (tmp_path / "out" / "sub" / "b.txt").read_text() == "b"
    assert not list((tmp_path / "out").glob(".lcid-tmp-*"))


def test_failure_leaves_nothing_and_keeps_existing_files(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "new") as staging:
        (staging / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "keep.txt").write_text("keep")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "old") as staging:
        (staging / "keep.txt").write_text("overwritten?")
        raise RuntimeError("boom")
    assert (tmp_path / "old" / "keep.txt").read_text() == "keep"
    assert [p.name for p in (tmp_path / "old").iterdir()] == ["keep.txt"]
