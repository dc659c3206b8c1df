import csv
import json

from PIL import Image

from blindspots_nb.cli import main


def test_demo_writes_images_history_and_record(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--iterations", "4", "--device", "cpu", "--out", str(out)]) == 0
    for name in ("source.png", "target.png", "blind_spot.png"):
        with Image.open(out / name) as image:
            assert image.size == (224, 224)
    record = json.loads((out / "record.json").read_text())
    assert record["model"]["name"] == "efficientnet_lite0"
    assert record["config"]["iterations"] == 4 and record["device"].startswith("cpu")
    assert record["source_class"] == "espresso" and record["source_confidence_clean"] > 0.9
    assert abs(record["source_confidence_clean"] - record["source_confidence_blind_spot"]) < 0.2
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [int(row["iteration"]) for row in rows] == [0, 1, 2, 3, 4]
    assert float(rows[-1]["distance_l2"]) < float(rows[0]["distance_l2"])
    assert "espresso" in capsys.readouterr().out


def test_demo_unknown_photo_and_model(tmp_path, capsys):
    assert main(["demo", "--model", "resnet_9000", "--out", str(tmp_path)]) == 2
    assert "unknown model 'resnet_9000'" in capsys.readouterr().err
    assert main(["demo", "--source", "mona_lisa", "--out", str(tmp_path)]) == 2
    assert "unknown photo 'mona_lisa'; bundled photos: astronaut" in capsys.readouterr().err
