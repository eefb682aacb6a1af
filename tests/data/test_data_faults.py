"""Data folders as users have them: a disk that fills up mid-write, broken links, the wrong layout."""

from __future__ import annotations

import errno
import os

import pytest
from PIL import Image

from reid_export.data.course import load_course
from reid_export.data.market1501 import load_market1501
from reid_export.data.synthetic import generate_market1501
from reid_export.errors import DataError

SMALL = dict(train_ids=2, test_ids=2, distractors=1, junk=1, train_images=(2, 2), gallery_images=(2, 2),
             cameras_per_id=(2, 2), progress=False)


def test_a_full_disk_mid_synth_removes_the_partial_set_so_a_rerun_works(tmp_path, monkeypatch):
    real_save, saved = Image.Image.save, []

    def fills_up(self, fp, *args, **kwargs):  # the disk, not the code under test
        if len(saved) == 5:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        saved.append(fp)
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", fills_up)
    out = tmp_path / "synth"
    with pytest.raises(DataError, match=r"could not write \(No space left on device\); the 5 files written so far "
                                        r"were removed"):
        generate_market1501(out, **SMALL)
    assert [p for p in out.rglob("*") if p.is_file()] == []
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert generate_market1501(out, **SMALL).total_images > 0  # the rerun is not refused


def test_synth_into_a_file_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    with pytest.raises(DataError, match="is a file"):
        generate_market1501(path, **SMALL)
    assert path.read_text() == "mine"


def test_dangling_links_and_symlink_loops_are_reported(tmp_path):
    root = tmp_path / "market"
    generate_market1501(root, **SMALL)
    gallery = root / "bounding_box_test"
    (gallery / "0001_c1s1_000001_09.jpg").symlink_to(tmp_path / "gone.jpg")
    loop = gallery / "0001_c1s1_000002_09.jpg"
    loop.symlink_to(loop)
    with pytest.warns(UserWarning, match=r"Skipped 2 broken symbolic links in .*bounding_box_test: "
                                         r".*\(dangling -> .*gone\.jpg\).*\(a symlink loop"):
        data = load_market1501(root, splits=("query", "gallery"), progress=False)
    assert all(s.path.is_file() for s in data.gallery)


def test_the_course_loader_on_a_market_folder_names_the_command_to_use(tmp_path):
    root = tmp_path / "market"
    generate_market1501(root, **SMALL)
    with pytest.raises(DataError, match=r"official Market-1501 layout.*`reid-export bench --data DIR"):
        load_course(root, progress=False)
