"""atomic_write: the content, and the permissions a plain write would give."""
from __future__ import annotations

import os
import stat

import pytest

from gensynth.files import atomic_write


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_a_new_file_gets_the_mode_open_gives_under_the_umask(tmp_path, umask_027):
    atomic_write(tmp_path / "a.json", b"{}")
    (tmp_path / "b.json").write_bytes(b"{}")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == stat.S_IMODE((tmp_path / "b.json").stat().st_mode) == 0o640
    assert (tmp_path / "a.json").read_bytes() == b"{}"


def test_a_replaced_file_keeps_its_mode_and_no_temporary_file_is_left(tmp_path):
    target = tmp_path / "table.json"
    target.write_bytes(b"old")
    target.chmod(0o604)
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o604
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]
