"""Names from data (a model, a class, a caption) in the Markdown the notebooks display: JupyterLab renders a
cell's Markdown output with its HTML live, so each builder must show a name carrying a tag as text."""

from types import SimpleNamespace

import torch

from blindspots_nb.analysis.compare import Transfer, distance_table, transfer_table
from blindspots_nb.analysis.words import saliency_sentences, taxonomy_markdown
from blindspots_nb.tools.markup import markdown_text
from helpers import HOSTILE_CLASS, HOSTILE_MODEL

SHOWN = "&lt;img src=z onerror=window.__pwned=3&gt;"


def test_markdown_text_shows_markup_as_text():
    assert markdown_text("<b>a|b</b> & c") == "&lt;b&gt;a\\|b&lt;/b&gt; &amp; c"
    assert markdown_text("fonts_cnn") == "fonts_cnn"  # ordinary names unchanged


def test_the_comparison_tables_escape_model_names_and_captions():
    distances = {key: torch.tensor([0.1, 0.2]) for key in ("rmse", "linf", "ssim")}
    comparison = SimpleNamespace(model=HOSTILE_MODEL, attack="PGD", threat=SimpleNamespace(norm="linf", radius=0.03),
                                 fooled=torch.tensor([1, 1]), kept=torch.tensor([1, 0]), k=2,
                                 other_class=torch.tensor([True, True]),
                                 distances={"adversarial to source": distances, "blind spot to target": distances},
                                 caption=f"{HOSTILE_MODEL} | cpu")
    table = distance_table([comparison])
    assert "<img" not in table and f"| {SHOWN} | linf 0.03 | 2/2 |" in table
    matrix = torch.ones(2, 2, dtype=torch.long)
    transfer = Transfer(models=[HOSTILE_MODEL, "m"], fooled=matrix, keeps_source=matrix, sees_target=matrix, k=2,
                        caption=HOSTILE_MODEL)
    table = transfer_table(transfer)
    assert "<img" not in table and f"| {SHOWN} | m | 1/2 |" in table and table.endswith(SHOWN)


def test_the_saliency_sentence_escapes_class_names():
    points = torch.tensor([0.2, 0.9])
    path = SimpleNamespace(with_source=points, with_target=points.flip(0), source_confidence=torch.tensor([0.9, 0.8]),
                           keeps_source_class=True, predicted=torch.tensor([0, 0]), source_label=0, target_label=1,
                           steps=["source", "blind spot (iteration 9)"], method="saliency",
                           source_map_ahead=torch.tensor([True, True]), target_class_maps=None)
    sentence = saliency_sentences(path, [HOSTILE_CLASS, "B"])
    assert "<img" not in sentence and "still names '&lt;img src=y onerror=window.__pwned=2&gt;'" in sentence


def test_the_taxonomy_table_escapes_model_names():
    clean = {"n": 3, "median_distance_source": 0.05, "oracle_source": 1.0, "oracle_neither": 0.0}
    table = taxonomy_markdown({f"{HOSTILE_MODEL} clean": clean})
    assert "<img" not in table and f"| {SHOWN} | clean sources | 3 |" in table
