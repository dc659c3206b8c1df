"""``blindspots-nb demo``'s output folder: one that cannot be a folder is refused before
any work, with one line; the files are written whole, with the umask's mode."""

import json
import os

import pytest

from blindspots_nb import models
from blindspots_nb.cli import main

FILES = ["blind_spot.png", "history.csv", "record.json", "source.png", "target.png"]


@pytest.mark.parametrize("kind", ["a file", "a dangling link", "under a file"])
def test_an_out_that_cannot_be_a_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch, kind):
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    out = {"a file": mine, "a dangling link": tmp_path / "link", "under a file": mine / "demo"}[kind]
    if kind == "a dangling link":
        out.symlink_to(tmp_path / "missing")

    def load_model(*args, **kwargs):
        raise AssertionError("the model was loaded before --out-dir was checked")

    monkeypatch.setattr(models, "load_model", load_model)
    assert main(["demo", "--out-dir", str(out), "--iterations", "2", "--device", "cpu"]) == 2
    problem = {"a file": f"--out-dir {out} is a file, not a folder",
               "a dangling link": f"--out-dir {out} is a link to {tmp_path / 'missing'}, which does not exist",
               "under a file": f"--out-dir {out}: {mine} is a file, not a folder"}[kind]
    assert capsys.readouterr().err == (f"blindspots-nb demo: error: {problem}; "
                                       "name a folder to write to (it is made if missing)\n")
    assert mine.read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ["notes.txt"] + (["link"] if kind == "a dangling link" else []))
    assert kind != "a dangling link" or not out.exists()


def test_the_demos_files_are_whole_with_the_umasks_mode(tmp_path):
    before = os.umask(0o027)
    try:
        assert main(["demo", "--out-dir", str(tmp_path / "demo"), "--iterations", "2", "--device", "cpu"]) == 0
    finally:
        os.umask(before)
    written = sorted((tmp_path / "demo").iterdir())
    assert [path.name for path in written] == FILES  # and no temporary files
    assert {path.name: path.stat().st_mode & 0o777 for path in written} == dict.fromkeys(FILES, 0o640)


def test_the_demo_follows_the_model_its_image_source_and_default_images(tmp_path, capsys):
    """A FONTS model's demo walks a glyph A towards a glyph B (not the coffee photo), and
    takes glyphs by their short names."""
    assert main(["demo", "--model", "fonts_cnn", "--out-dir", str(tmp_path / "a"), "--iterations", "2",
                 "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "a" / "record.json").read_text())
    assert (record["image_source"], record["source_class"], record["target_class"]) == ("fonts:test", "A", "B")
    assert record["source"].startswith("A") and record["target"].startswith("B")
    assert (record["source_label"], record["target_label"]) == ("A", "B")  # the glyphs' labels, beside
    out = capsys.readouterr().out
    assert "fonts_cnn: A" in out and f"  {record['source']}: A (" in out and "), labelled A\n" in out
    assert main(["demo", "--model", "fonts_cnn", "--source-name", "A13", "--target-name", "C24", "--out-dir",
                 str(tmp_path / "b"), "--iterations", "2", "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "b" / "record.json").read_text())
    assert (record["source"], record["target_class"]) == ("A13 (STIXGeneralItalic)", "C")
    assert main(["demo", "--model", "fonts_cnn", "--source-name", "coffee", "--out-dir", str(tmp_path / "c"),
                 "--iterations", "2", "--device", "cpu"]) == 2
    assert "no images ['coffee'] in 'fonts:test'" in capsys.readouterr().err
