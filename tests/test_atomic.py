"""The one atomic write and the one PNG saver."""

from __future__ import annotations

import pytest

from effnet.atomic import atomic_path, write_atomic
from effnet.figures import new_figure, save_png


def test_a_failed_write_leaves_the_old_file_and_no_partial(tmp_path):
    path = tmp_path / "state.json"
    write_atomic(path, "old")

    def crash(partial):
        partial.write_text("half of the new")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic(path, crash)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_text_bytes_and_writers_land_whole(tmp_path):
    assert write_atomic(tmp_path / "a" / "b.txt", "text").read_text() == "text"
    assert write_atomic(tmp_path / "c.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    with atomic_path(tmp_path / "d.txt") as partial:
        assert partial.parent == tmp_path and partial.name.startswith(".d.txt.")
        partial.write_text("via path")
    assert (tmp_path / "d.txt").read_text() == "via path"


def test_save_png_writes_a_png(tmp_path):
    fig = new_figure(2, 2)
    fig.add_subplot().plot([0, 1], [1, 0])
    path = save_png(fig, tmp_path / "plots" / "line.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["line.png"]
