"""Old spellings after issue 17's renaming: files written before (run folders' settings,
blind-spot rows) are data and are still read under today's names, with a DeprecationWarning;
the old API spellings (keywords and flags) are gone, and refused by name."""

import json

import pytest
import torch

from blindspots_nb.analysis.attacks import pgd
from blindspots_nb.cli import main
from blindspots_nb.lst import LSTConfig
from blindspots_nb.models import wrap
from blindspots_nb.protocol import Experiment, RunStore
from blindspots_nb.tools.deprecation import renamed_keys
from helpers import make_tiny_cnn


def test_old_keys_are_read_under_their_new_names():
    with pytest.warns(DeprecationWarning, match="pool.json: old key"):
        assert renamed_keys({"source": "photos", "names": []}, "pool.json", source="image_source") == {
            "image_source": "photos", "names": []}
    assert renamed_keys({"image_source": "photos", "source": 3}, "x", source="image_source") == {
        "image_source": "photos", "source": 3}  # the new key wins; nothing to warn about


def test_a_run_folder_written_before_the_renaming_is_read(tmp_path):
    experiment = Experiment("fonts:test", ("fonts_cnn",), LSTConfig(iterations=3), n_sources=2, rounds=2)
    store = RunStore(tmp_path)
    store.begin([experiment])
    settings = json.loads((tmp_path / "settings.json").read_text())
    settings["experiments"][0] = {("source" if key == "image_source" else key): value
                                  for key, value in settings["experiments"][0].items()}
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    with pytest.warns(DeprecationWarning, match="old key"):
        assert RunStore(out_dir=tmp_path).experiments() == [experiment]


def test_an_old_keyword_is_refused_by_its_name():
    model = wrap(make_tiny_cnn(), (0.5,) * 3, (0.25,) * 3, [f"c{i}" for i in range(5)], (3, 16, 16), device="cpu")
    x, y = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1])
    with pytest.raises(TypeError, match="unexpected keyword argument 'eps'"):
        pgd(model, x, y, eps=0.1, steps=2, seed=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'source'"):
        Experiment(source="fonts", models=("fonts_cnn",))


@pytest.mark.parametrize("command, flag, value", [("reproduce", "--source", "fonts:train"),  # now --image-source
                                                  ("demo", "--source", "coffee"),  # now --source-name
                                                  ("demo", "--target", "chelsea")])  # now --target-name
def test_an_old_flag_is_refused_by_its_name(capsys, command, flag, value):
    assert pytest.raises(SystemExit, main, [command, flag, value]).value.code == 2
    assert f"unrecognized arguments: {flag} {value}" in capsys.readouterr().err


def test_an_old_flag_does_not_pass_as_a_prefix_of_a_new_one(capsys):
    assert pytest.raises(SystemExit, main, ["reproduce", "--out", "somewhere"]).value.code == 2
    assert "unrecognized arguments: --out somewhere" in capsys.readouterr().err
