"""The one registry of image sources: every spelling opens, bad ones are explained."""

import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from blindspots_nb.data import TensorImages, fonts_dataset
from blindspots_nb.data.sources import (PHOTO_PICKS, ImageSource, choose_by_class, default_names, default_source,
                                        label_warnings, open_source, parse_source, pick_images, pick_labelled,
                                        source_images, spellings)


class _Model(torch.nn.Module):
    """What the registry reads of a model (its input size, info and class names), classifying
    by a fixed random linear map of the pixels, or, with ``by_channel``, by the brightest
    colour channel (class c: channel c)."""

    def __init__(self, input_size=(3, 16, 16), dataset="imagenet", class_names=None, by_channel=False):
        super().__init__()
        self.input_size, self.info = input_size, {"dataset": dataset, "crop_pct": 1.0}
        self.class_names = class_names or [f"class {i}" for i in range(1000)]
        self.by_channel = by_channel
        self.linear = torch.nn.Linear(int(np.prod(input_size)), len(self.class_names))
        torch.nn.init.normal_(self.linear.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, images):
        return images.mean((2, 3)) * 100 if self.by_channel else self.linear(images.flatten(1))


def _model(input_size=(3, 16, 16), dataset="imagenet"):
    return _Model(input_size, dataset)


def test_spellings_parse_to_one_canonical_form():
    assert parse_source("imagenet:/data/val") == ("imagenet", "/data/val")
    assert parse_source(" ImageNet: /data/val ") == ("imagenet", "/data/val")
    assert str(ImageSource.of("fonts")) == "fonts:test" and str(ImageSource.of("photos")) == "photos"
    assert ImageSource.of(" ImageNet: /data/val ") == ImageSource("imagenet", "/data/val")
    source = ImageSource.of("folder:/home/me/my_digits")
    assert (source.kind, source.argument, source.shown) == ("folder", "/home/me/my_digits", "folder:my_digits")
    assert ImageSource.of(source) is source  # an image source is itself: passed inward, parsed no more
    with pytest.raises(ValueError, match="unknown image source kind 'mnist'"):
        ImageSource("mnist")
    assert spellings() == ["photos", "fonts:test|train", "digits:test|train", "imagenet:ROOT", "cifar10:ROOT",
                           "folder:PATH"]


@pytest.mark.parametrize("spelling, message", [
    ("somewhere", "'somewhere'; write one of: photos.*imagenet:ROOT"),
    ("imagenet", "needs its ROOT: write imagenet:ROOT"),
    ("photos:/x", "takes no argument"),
    ("fonts:validation", "fonts:test or fonts:train"),
])
def test_bad_spellings_list_the_valid_ones(spelling, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("|", r"\|")):
        open_source(spelling)


def test_photos_are_unlabelled_and_sized_for_the_model():
    photos = open_source("photos", _model())
    assert (photos.labels == -1).all() and "coffee" in photos.names
    images, names = source_images("photos", _model())
    assert images.shape[1:] == (3, 16, 16) and len(images) == len(names)
    assert 0 <= images.min() and images.max() <= 1
    picked, picked_names = pick_images(_model(), k=3)
    assert picked_names == list(PHOTO_PICKS[:3])
    torch.testing.assert_close(picked[1], images[names.index(PHOTO_PICKS[1])])
    gray, _ = source_images("photos", _model((1, 16, 16)))
    assert gray.shape[1:] == (1, 16, 16)


def test_fonts_are_the_glyph_dataset_for_either_channel_count():
    glyphs = open_source("fonts:test", _model((1, 32, 32), dataset="fonts"), seed=3)
    reference = fonts_dataset("test", n=1000, seed=3, size=32)
    torch.testing.assert_close(glyphs.images, reference.images)
    assert torch.equal(glyphs.labels, reference.labels)
    assert glyphs.names[0] == f"{'ABCDEFGHIJ'[int(reference.labels[0])]}0 ({reference.names[0]})"
    rgb = open_source("fonts:train", _model((3, 32, 32)))
    assert rgb.images.shape[1:] == (3, 32, 32) and torch.equal(rgb.images[:, 0], rgb.images[:, 2])
    model = _model((1, 32, 32), dataset="fonts")
    assert default_source(model) == ImageSource("fonts", "test")
    assert default_source(_model()) == ImageSource("photos")
    images, names = pick_images(model, k=3)
    assert [name[0] for name in names] == ["A", "B", "C"] and images.shape == (3, 1, 32, 32)


def test_the_explorers_images_skip_an_unreadable_imagenet_file_with_a_warning(tmp_path):
    folder = tmp_path / "imagenet" / "n01440764"
    folder.mkdir(parents=True)
    for n in range(3):
        Image.new("RGB", (24, 20), (80 * n, 0, 0)).save(folder / f"fish{n}.png")
    (folder / "fish1.png").write_bytes(b"not an image")  # listed with the folder, found unreadable when decoded
    with pytest.warns(UserWarning, match="fish1.png"):
        images, names = source_images(f"imagenet:{tmp_path / 'imagenet'}", _model(), limit=2)
    assert names == ["n01440764/fish0.png", "n01440764/fish2.png"]
    torch.testing.assert_close(images[1, 0], torch.full((16, 16), 160 / 255))
    (folder / "fish0.png").write_bytes(b"")
    (folder / "fish2.png").write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="holds no readable images"):
        source_images(f"imagenet:{tmp_path / 'imagenet'}", _model())


def test_folders_imagenet_and_cifar10(tmp_path):
    folder = tmp_path / "imagenet" / "n01440764"
    folder.mkdir(parents=True)
    for n in range(3):
        Image.new("RGB", (24, 20), (80 * n, 0, 0)).save(folder / f"fish{n}.png")
    imagenet = open_source(f"imagenet:{tmp_path / 'imagenet'}", _model())
    assert imagenet.labels.tolist() == [0, 0, 0]
    images, names = source_images(f"imagenet:{tmp_path / 'imagenet'}", _model())
    assert names == ["n01440764/fish0.png", "n01440764/fish1.png", "n01440764/fish2.png"]  # within the folder
    assert images.shape == (3, 3, 16, 16)
    torch.testing.assert_close(images[2, 0], torch.full((16, 16), 160 / 255))
    images, names = source_images(f"folder:{folder}", _model())
    assert names == ["fish0.png", "fish1.png", "fish2.png"]

    batch = {"data": np.arange(2 * 3072).reshape(2, 3072) % 256, "labels": [3, 5],
             "filenames": [b"cat.png", b"dog.png"]}
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({key.encode(): value for key, value in batch.items()}))
    images, names = source_images(f"cifar10:{path}", _model((3, 32, 32)))
    assert names == ["cat.png", "dog.png"]
    torch.testing.assert_close(images[0].flatten()[:3], torch.tensor([0.0, 1.0, 2.0]) / 255)
    with pytest.raises(ValueError, match=r"shape \(3, 32, 32\), but the model expects \(3, 16, 16\)"):
        source_images(f"cifar10:{path}", _model((3, 16, 16)))
    with pytest.raises(FileNotFoundError, match="no such image folder"):
        open_source(f"folder:{tmp_path / 'nowhere'}", _model())


def test_a_folder_skips_an_image_whose_colour_mode_cannot_be_converted(tmp_path):
    for n in range(2):
        Image.new("RGB", (24, 20), (80 * n, 0, 0)).save(tmp_path / f"fish{n}.png")
    Image.new("LAB", (40, 30)).save(tmp_path / "lab.tif")  # Pillow reads it, but cannot make it grayscale
    with pytest.warns(UserWarning, match=r"lab\.tif .*mode LAB to L"):
        folder = open_source(f"folder:{tmp_path}", _model((1, 16, 16), dataset="fonts"))
    assert [Path(path).name for path, _ in folder.skipped] == ["lab.tif"]
    assert [Path(name).name for name in folder.names] == ["fish0.png", "fish1.png"]
    torch.testing.assert_close(folder[1][0], torch.full((1, 16, 16), round(0.299 * 80) / 255))


def _colour_folders(root: Path) -> Path:
    """Class folders red/, green/, blue/, each holding img0.png ... img5.png (18 images, 6 names)."""
    for c, colour in enumerate(("red", "green", "blue")):
        (root / colour).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (20, 20), tuple(40 * i if k == c else 0 for k in range(3))).save(root / colour / f"img{i}.png")
    return root


def test_files_of_one_name_in_several_class_folders_are_several_images(tmp_path):
    model = _Model(class_names=["red", "green", "blue"], by_channel=True)
    images, names = source_images(f"folder:{_colour_folders(tmp_path)}", model)
    assert len(names) == len(set(names)) == 18 and names[:7] == [f"blue/img{i}.png" for i in range(6)] + ["green/img0.png"]
    torch.testing.assert_close(images[names.index("red/img5.png"), 0], torch.full((16, 16), 200 / 255))
    torch.testing.assert_close(images[names.index("blue/img5.png"), 2], torch.full((16, 16), 200 / 255))
    assert pick_images(model, ["green/img2.png", None], image_source=f"folder:{tmp_path}")[1] == [
        "green/img2.png", "blue/img1.png"]  # blue/img0.png is black, which the model calls red
    Image.new("RGB", (20, 20)).save(tmp_path / "red" / "odd.png")
    assert pick_images(model, ["odd.png"], image_source=f"folder:{tmp_path}")[1] == ["red/odd.png"]  # one has it
    with pytest.raises(ValueError, match=r"no images \['img2.png'\]"):  # three folders have one
        pick_images(model, ["img2.png"], image_source=f"folder:{tmp_path}")
    repeated = TensorImages(torch.rand(2, 3, 16, 16), torch.tensor([-1, -1]), [], ["p", "p"])
    with pytest.raises(ValueError, match="names several images alike \\('p'\\)"):
        source_images(repeated, model)


def test_labels_in_words_says_how_the_folder_is_read(tmp_path):
    model = SimpleNamespace(input_size=(3, 16, 16), info={"crop_pct": 1.0}, class_names=["red", "green", "blue"])
    Image.new("RGB", (20, 20)).save(tmp_path / "a.png")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("a subfolder without images makes no class")
    (tmp_path / "red").mkdir()
    (tmp_path / "red" / "broken.png").write_bytes(b"\x89PNG damaged")
    with pytest.warns(UserWarning, match="readme.txt"):
        assert open_source(f"folder:{tmp_path}", model).labels.tolist() == [-1]  # read unlabelled
    assert ImageSource.of(f"folder:{tmp_path}").labels_in_words() == ("no class folders: the model's own "
                                                                       "prediction is the label")
    _colour_folders(tmp_path / "labelled")
    assert ImageSource.of(f"folder:{tmp_path / 'labelled'}").labels_in_words() == "labelled by folder"
    assert ImageSource("photos").labels_in_words() is None


def test_an_open_dataset_passes_through_and_names_are_checked():
    dataset = TensorImages(torch.rand(2, 3, 16, 16), torch.tensor([-1, -1]), [], ["p", "q"])
    assert open_source(dataset) is dataset
    images, names = source_images(dataset, _model())
    assert names == ["p", "q"] and torch.equal(images, dataset.images)
    with pytest.raises(ValueError, match=r"no images \['nope'\]"):
        pick_images(_model(), ["coffee", "nope"])
    with pytest.raises(TypeError, match="or a dataset, got int"):
        open_source(42)


def test_unnamed_images_are_the_sources_defaults_not_named_otherwise():
    assert default_names(ImageSource("photos"), ["astronaut", "coffee", "chelsea"], 2) == ["coffee", "chelsea"]
    assert default_names(ImageSource("fonts", "test"), ["B0 (x)", "A1 (y)", "B2 (x)"], 3) == ["A1 (y)", "B0 (x)"]
    assert default_names(ImageSource("folder", "/images"), ["b.png", "a.png"], 1) == ["b.png"]
    assert pick_images(_model(), ["chelsea", None], k=2)[1] == ["chelsea", "coffee"]
    assert pick_images(_model(), [None, "coffee"])[1] == ["chelsea", "coffee"]
    fonts = _model((1, 32, 32), dataset="fonts")
    defaults = pick_images(fonts, k=2)[1]
    assert [name[0] for name in defaults] == ["A", "B"]
    short = defaults[1].split(" (")[0]  # a glyph's name without its font
    images, names = pick_images(fonts, [short, None])
    assert names == [defaults[1], defaults[0]]
    torch.testing.assert_close(images, pick_images(fonts, defaults[::-1])[0])
    dataset = TensorImages(torch.rand(2, 3, 16, 16), torch.tensor([-1, -1]), [], ["p", "q"])
    assert pick_images(_model(), [None, "p"], image_source=dataset)[1] == ["q", "p"]
    assert pick_images(_model(), k=3, image_source=dataset)[1] == ["p", "q"]  # all there are
    photos = source_images("photos", _model())[1]
    with pytest.raises(ValueError, match=rf"{len(photos) + 1} images .*'photos' has only \['astronaut'"):
        pick_images(_model(), [None] * (len(photos) + 1))


def test_default_images_of_a_folder_whose_first_images_are_one_class_are_of_three_classes(tmp_path):
    """Sorted, a labelled folder starts with six blue images; the defaults are a source the
    model gets right and targets of other classes, each labelled beside its prediction."""
    model = _Model(class_names=["red", "green", "blue"], by_channel=True)
    picked = pick_labelled(model, k=3, image_source=f"folder:{_colour_folders(tmp_path)}")
    # img0.png of each folder is black, which the model calls red (class 0): wrong for blue and green
    assert picked.names == ["blue/img1.png", "green/img1.png", "red/img0.png"]
    assert picked.labels.tolist() == picked.predictions.tolist() == [2, 1, 0]
    assert picked.text().splitlines()[0] == f"blue/img1.png: blue ({float(picked.confidence[0]):.3f}), labelled blue"
    assert picked.warnings() == []
    with pytest.warns(UserWarning) as caught:  # a misclassified source and a target of its class, asked for by name
        chosen = pick_labelled(model, ["blue/img0.png", "blue/img3.png", None], image_source=f"folder:{tmp_path}")
    assert [str(w.message) for w in caught] == [
        "the source blue/img0.png is labelled 'blue', but the model classifies it as 'red'",
        "the target blue/img3.png is labelled 'blue', the source's class: LST towards it finds no blind spot"]
    assert chosen.names[2] == "green/img1.png"  # the None: the first right one of a class not yet chosen


def test_choosing_by_class_prefers_right_images_of_new_classes_then_any_other_class():
    classes, correct = [0, 0, 1, 1, 2], [True, True, False, True, False]
    assert choose_by_class(classes, correct, range(5), [None, None, None]) == [0, 3, 4]  # 4 is wrong, but class 2
    assert choose_by_class(classes, correct, range(5), [None] * 5) == [0, 3, 4, 2, 1]
    assert choose_by_class(classes, correct, [4, 3, 2, 1, 0], [1, None]) == [1, 3]
    assert label_warnings(["a", "b"], [-1, -1], [7, 7], [str(c) for c in range(10)]) == [
        "the target b is classified as '7', the source's class: LST towards it finds no blind spot"]


def _counted_parses(monkeypatch) -> list[str]:
    """The spellings parse_source parses from now on (ImageSource.of calls it by the module's name)."""
    from blindspots_nb.data import sources

    parsed, parse = [], sources.parse_source
    monkeypatch.setattr(sources, "parse_source", lambda spelling: parsed.append(spelling) or parse(spelling))
    return parsed


def test_the_explorer_parses_its_image_source_once(monkeypatch):
    from blindspots_nb.explorer.state import Explorer
    from blindspots_nb.models import load_model

    model = load_model("fonts_cnn", device="cpu")
    parsed = _counted_parses(monkeypatch)
    explorer = Explorer(model, " Fonts: test ", device="cpu", live=False)
    assert parsed == [" Fonts: test "] and explorer.image_source == "fonts:test"
    explorer.set_image_source("photos")  # a name the menu offers: already an ImageSource
    explorer.set_model(model)
    assert parsed == [" Fonts: test "]


def test_a_protocol_run_parses_its_image_source_once_per_edge(monkeypatch, tmp_path):
    """Built from a spelling (one parse), then passed inward: the pool, the model's run and the
    tables parse nothing more; only each read of the run's settings file (an edge) parses."""
    from blindspots_nb import protocol
    from blindspots_nb.lst import LSTConfig
    from blindspots_nb.protocol import Experiment, RunStore
    from blindspots_nb.protocol import experiment as experiment_module
    from blindspots_nb.protocol import run as run_module

    parsed = _counted_parses(monkeypatch)
    read, from_dict = [], Experiment.from_dict.__func__
    monkeypatch.setattr(experiment_module.Experiment, "from_dict",
                        classmethod(lambda cls, values: read.append(values) or from_dict(cls, values)))
    experiment = Experiment("fonts:test", ("fonts_cnn",), LSTConfig(iterations=2, step_size=0.05), n_sources=2,
                            rounds=2, batch_size=2)
    assert parsed == ["fonts:test"]
    store = RunStore(tmp_path)
    store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
    protocol.prepare(experiment, store, device="cpu")
    protocol.run_model(experiment, "fonts_cnn", store, device="cpu", progress=False)
    protocol.assemble(store, [experiment])
    assert read and len(parsed) == 1 + len(read)
    assert all(record["image_source"] == "fonts:test" for record in read)
