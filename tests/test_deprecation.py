"""Old spellings after issue 17's renaming: old keyword arguments and keys of files
written before still work, with a DeprecationWarning."""

import json

import pytest
import torch

from blindspots_nb.analysis.attacks import pgd
from blindspots_nb.lst import LSTConfig
from blindspots_nb.models import wrap
from blindspots_nb.protocol import Experiment, RunStore
from blindspots_nb.tools.deprecation import renamed_keys, renamed_keywords
from helpers import make_tiny_cnn


def test_an_old_keyword_is_passed_under_its_new_name():
    @renamed_keywords(old="new")
    def f(new=None):
        return new

    with pytest.warns(DeprecationWarning, match=r"f\(\): old= is deprecated, use new="):
        assert f(old=3) == 3
    with pytest.raises(TypeError, match="both new= and its old name old="):
        f(old=1, new=2)
    model = wrap(make_tiny_cnn(), (0.5,) * 3, (0.25,) * 3, [f"c{i}" for i in range(5)], (3, 16, 16), device="cpu")
    x, y = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1])
    with pytest.warns(DeprecationWarning, match="eps= is deprecated, use radius="):
        old = pgd(model, x, y, eps=0.1, steps=2, seed=1)
    assert torch.equal(old, pgd(model, x, y, radius=0.1, steps=2, seed=1))


def test_old_keys_are_read_under_their_new_names():
    with pytest.warns(DeprecationWarning, match="pool.json: old key"):
        assert renamed_keys({"source": "photos", "names": []}, "pool.json", source="image_source") == {
            "image_source": "photos", "names": []}
    assert renamed_keys({"image_source": "photos", "source": 3}, "x", source="image_source") == {
        "image_source": "photos", "source": 3}  # the new key wins; nothing to warn about


def test_experiment_takes_its_old_field_name():
    with pytest.warns(DeprecationWarning, match="source= is deprecated, use image_source="):
        old = Experiment(source="fonts", models=("fonts_cnn",))
    assert old == Experiment("fonts:test", ("fonts_cnn",))


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
