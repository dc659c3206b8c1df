"""The live-triangle benchmark runs end to end (tiny settings; its timings are not checked)."""

from helpers import load_benchmark

live_triangle = load_benchmark("live_triangle")


def test_the_benchmark_prints_the_redraw_and_every_kind_of_run(capsys):
    rows = live_triangle.main(["--models", "fonts_cnn", "--iterations", "12", "--runs", "1", "--redraws", "1",
                               "--divisions", "3", "--every", "0"])
    (row,) = rows
    assert row["model"] == "fonts_cnn" and row["points"] == 10  # 3 divisions: 10 grid points
    assert row["redraw"] >= row["compute"] > 0 and 0 <= row["redraw share"] < 1
    assert all(row[kind] > 0 for kind in live_triangle.KINDS)
    printed = capsys.readouterr().out
    assert "on/off" in printed and "off/plain" in printed and "redraws" in printed and "share" in printed
    assert "fonts_cnn: the live triangle costs" in printed and "% of Run's iterations per second" in printed
