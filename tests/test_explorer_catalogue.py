"""The explorer's catalogue on its own, no explorer and no threads: image sources by name,
uploads, the default choice of a source and two targets, label warnings, the traversal
between chosen images."""

import io

import pytest
import torch
from PIL import Image

from blindspots_nb.data import TensorImages
from blindspots_nb.data.sources import ImageSource
from blindspots_nb.execution import Execution
from blindspots_nb.explorer.catalogue import (GIVEN_IMAGES, UPLOAD_PREFIX, Catalogue, LoadedModels, named_source,
                                             read_upload)
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.models import wrap

CLASSES = ["red", "green", "blue"]


class BrightestChannel(torch.nn.Module):
    """Class = the image's brightest colour channel."""

    def forward(self, x):
        return x.mean((2, 3)) * 50


@pytest.fixture
def model():
    return wrap(BrightestChannel(), mean=(0, 0, 0), std=(1, 1, 1), class_names=CLASSES, input_size=(3, 8, 8),
                name="channels")


def coloured(channels: list[int], labels: list[int], names: list[str]) -> TensorImages:
    """Images of one bright channel each, with ``labels`` (-1: unknown)."""
    images = torch.zeros(len(channels), 3, 8, 8)
    for i, channel in enumerate(channels):
        images[i, channel] = 0.8
    return TensorImages(images, torch.tensor(labels), CLASSES if max(labels) >= 0 else [], names)


def png(colour, size=(16, 16)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def test_an_image_source_is_offered_under_its_one_spelling_a_dataset_as_given_images():
    dataset = coloured([0], [-1], ["r"])
    assert named_source(dataset, {}) == (GIVEN_IMAGES, dataset)
    assert named_source("Fonts", {}) == ("fonts:test", ImageSource("fonts", "test"))
    assert named_source(GIVEN_IMAGES, {GIVEN_IMAGES: dataset}) == (GIVEN_IMAGES, dataset)


def test_a_catalogue_holds_the_sources_images_with_their_labels_and_the_uploads_at_the_models_size(model):
    dataset = coloured([0, 1], [0, 1], ["r", "g"])
    key, picture, image = read_upload("blue.png", png((0, 0, 255)), model)
    assert key == UPLOAD_PREFIX + "blue.png" and image.shape == (3, 8, 8)
    catalogue = Catalogue.load(model, dataset, {key: picture})
    assert list(catalogue.images) == ["r", "g", key]
    torch.testing.assert_close(catalogue.images["g"], dataset.images[1])
    torch.testing.assert_close(catalogue.images[key], image)
    assert catalogue.labels == {"r": 0, "g": 1}  # an upload has no label
    assert [catalogue.label_name(name) for name in catalogue.images] == ["red", "green", None]
    added = catalogue.with_image("upload: more.png", image)
    assert list(added.images) == ["r", "g", key, "upload: more.png"] and len(catalogue.images) == 3


@pytest.mark.parametrize("content, reason", [(b"not an image", "cannot use the upload 'notes.txt'"),
                                             (b"", "cannot use the upload 'notes.txt'")])
def test_an_upload_that_is_no_image_is_one_value_error_naming_it(model, content, reason):
    with pytest.raises(ValueError, match=reason):
        read_upload("notes.txt", content, model)


def test_the_default_choice_is_a_correctly_classified_source_and_targets_of_two_other_classes(model):
    """Labels red, red, red, green, blue; the first red looks blue to the model."""
    catalogue = Catalogue.load(model, coloured([2, 0, 0, 1, 2], [0, 0, 0, 1, 2], ["r0", "r1", "r2", "g", "b"]), {})
    assert catalogue.choose(model, (None, None, None)) == ("r1", "g", "b")
    assert catalogue.choose(model, ("r2", None, None)) == ("r2", "g", "b")
    assert catalogue.choose(model, (None, "b", None)) == ("r1", "b", "g")


def test_the_current_choice_stays_while_the_catalogue_holds_it_and_asked_names_win(model):
    catalogue = Catalogue.load(model, coloured([0, 0, 1, 2], [-1] * 4, ["r1", "r2", "g", "b"]), {})
    assert catalogue.choose(model, (None, None, None), ("r2", "b", "g")) == ("r2", "b", "g")
    assert catalogue.choose(model, (None, "g", None), ("r2", "b", "g")) == ("r2", "g", "g")
    assert catalogue.choose(model, (None, None, None), ("gone", "b", "g")) == ("r1", "b", "g")


def test_a_name_the_catalogue_lacks_is_one_value_error_listing_the_names(model):
    catalogue = Catalogue.load(model, coloured([0, 1], [-1] * 2, ["r", "g"]), {})
    with pytest.raises(ValueError, match=r"'nope'.*\['r', 'g'\]"):
        catalogue.choose(model, (None, "nope", None))


def test_label_warnings_name_a_misclassified_source_and_a_target_of_its_class(model):
    catalogue = Catalogue.load(model, coloured([2, 0, 1, 2], [0, 0, 1, 2], ["r0", "r1", "g", "b"]), {})
    assert catalogue.label_warning(("r1", "g", "b"), [0, 1, 2]) is None
    warning = catalogue.label_warning(("r0", "r1", "b"), [2, 0, 2])
    assert warning.startswith("The source r0 is labelled 'red', but the model classifies it as 'blue'; ")
    assert "the target r1 is labelled 'red', the source's class" in warning and warning.endswith(".")


def test_a_source_that_is_a_target_is_said_before_labels_and_labels_once_per_choice(model):
    catalogue = Catalogue.load(model, coloured([2, 0, 1, 2], [0, 0, 1, 2], ["r0", "r1", "g", "b"]), {})
    assert catalogue.warnings(("g", "g", "b"), [1, 1, 2], again=False) == [
        "Source and target are the same image: the traversal has nowhere to go."]
    misclassified = catalogue.warnings(("r0", "g", "b"), [2, 1, 2], again=False)
    assert misclassified == [catalogue.label_warning(("r0", "g", "b"), [2, 1, 2])] and "r0" in misclassified[0]
    assert catalogue.warnings(("r0", "g", "b"), [2, 1, 2], again=True) == []
    assert catalogue.warnings(("r1", "g", "b"), [0, 1, 2], again=False) == []


def test_loaded_models_load_a_registry_name_once_and_keep_a_given_model_under_its_name(model, monkeypatch):
    from blindspots_nb.explorer import catalogue as module
    loads = []
    monkeypatch.setattr(module, "load_model", lambda name, device: loads.append((name, device)) or model)
    models = LoadedModels(device="cpu")
    assert models.get("fonts_cnn") is model and models.get("fonts_cnn") is model
    assert loads == [("fonts_cnn", "cpu")]
    other = wrap(BrightestChannel(), mean=(0, 0, 0), std=(1, 1, 1), class_names=CLASSES, input_size=(3, 8, 8),
                 name="given")
    assert models.get(other) is other and models.get("given") is other and len(loads) == 1


def test_the_traversal_walks_from_the_source_towards_both_targets_in_one_batch(model):
    catalogue = Catalogue.load(model, coloured([0, 1, 2], [-1] * 3, ["r", "g", "b"]), {})
    config = LSTConfig(iterations=5)
    traversal = catalogue.traversal(model, ("r", "g", "b"), config, Execution())
    assert isinstance(traversal, Traversal) and traversal.config == config
    torch.testing.assert_close(traversal.sources, torch.stack([catalogue.images["r"]] * 2))
    torch.testing.assert_close(traversal.targets, torch.stack([catalogue.images["g"], catalogue.images["b"]]))
    assert traversal.labels.tolist() == [0, 0]  # the model's class of the source, twice
