"""The output-folder policy every script writes through (tools.folders.claim) and the CSV writer
(tools.atomic.csv_text): a folder is new, empty, or the same tool's with the same settings."""

import csv
import io
import json

import pytest

from blindspots_nb.tools import atomic, folders


def test_a_new_folder_is_claimed_and_a_rerun_with_the_same_settings_resumes(tmp_path):
    settings = {"tool": "a test", "seed": 0, "models": ["fonts_cnn"]}
    folder = folders.claim(tmp_path / "new" / "out", settings)
    assert json.loads((folder / "settings.json").read_text()) == settings
    (folder / "piece.json").write_text("{}")
    assert folders.claim(folder, dict(settings)) == folder  # resumed: nothing written, nothing refused
    assert sorted(p.name for p in folder.iterdir()) == ["piece.json", "settings.json"]


def test_other_settings_or_files_of_anyone_else_are_refused_and_left_alone(tmp_path):
    folders.claim(tmp_path / "run", {"seed": 0, "starts": 3})
    with pytest.raises(folders.FolderTaken, match=r"other settings \(starts differ\)"):
        folders.claim(tmp_path / "run", {"seed": 0, "starts": 4})
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(folders.FolderTaken, match="holds no settings.json"):
        folders.claim(tmp_path / "mine", {"seed": 0})
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "settings.json").write_text('{"seed": ')
    with pytest.raises(folders.FolderTaken, match="settings.json.*use another --out-dir"):
        folders.claim(tmp_path / "cut", {"seed": 0})



def test_a_folder_settled_under_an_old_key_is_resumed_under_the_new_one(tmp_path):
    old = {"tool": "layer similarity", "data": "photos"}  # how the scripts named the image source before
    atomic.write_json(tmp_path / "run" / "settings.json", old)
    new = {"tool": "layer similarity", "image_source": "photos"}
    with pytest.warns(DeprecationWarning, match="data read as image_source"):
        assert folders.claim(tmp_path / "run", new, renamed={"data": "image_source"}) == tmp_path / "run"
    assert json.loads((tmp_path / "run" / "settings.json").read_text()) == old  # the old file is left as it was
    with pytest.warns(DeprecationWarning), pytest.raises(folders.FolderTaken, match=r"\(image_source differ\)"):
        folders.claim(tmp_path / "run", {**new, "image_source": "fonts:test"}, renamed={"data": "image_source"})

def test_csv_text_reads_back_as_written_and_rounds_floats_only_when_asked():
    rows = [{"name": "a,b", "count": 3, "value": 1 / 3}, {"name": "c", "count": 4, "value": 2.0}]
    full = list(csv.DictReader(io.StringIO(atomic.csv_text(rows))))
    assert [(r["name"], int(r["count"]), float(r["value"])) for r in full] == [(r["name"], r["count"], r["value"])
                                                                             for r in rows]
    short = list(csv.DictReader(io.StringIO(atomic.csv_text(rows, digits=3))))
    assert [r["value"] for r in short] == ["0.333", "2"] and [r["count"] for r in short] == ["3", "4"]
