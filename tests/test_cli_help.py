"""The command line a newcomer reads: complete, plain help texts with their defaults, a
``--help`` that answers without importing torch."""

import dataclasses
import re
import subprocess
import sys

import pytest

from blindspots_nb.cli import build_parser, field_help
from blindspots_nb.execution import PRECISIONS, Execution
from blindspots_nb.lst import LSTConfig
from blindspots_nb.protocol import Experiment

COMMANDS = ("demo", "reproduce", "merge", "compare")


def _help(command: str | None = None) -> str:
    parser = build_parser()
    if command is None:
        return parser.format_help()
    return parser._subparsers._group_actions[0].choices[command].format_help()


@pytest.mark.parametrize("argv", [["--help"], ["reproduce", "--help"], ["demo", "--help"]])
def test_help_imports_no_torch(argv):
    code = ("import runpy, sys\n"
            f"sys.argv = ['blindspots-nb', *{argv!r}]\n"
            "try:\n    runpy.run_module('blindspots_nb', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'numpy' in sys.modules, file=sys.stderr)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "usage: blindspots-nb" in run.stdout
    assert run.stderr.split()[-2:] == ["False", "False"], run.stderr


def test_every_field_help_is_whole():
    """A field's help runs on over its docstring's continuation lines, without markup."""
    for cls in (LSTConfig, Execution, Experiment):
        helps = field_help(cls)
        assert set(helps) >= {f.name for f in dataclasses.fields(cls)} - {"models", "lst", "execution"}
    assert field_help(Execution)["fold_batchnorm"].endswith("(same function up to float rounding, faster).")
    assert field_help(Experiment)["image_source"].startswith("an image source spelling (photos, fonts:test, imagenet:ROOT ...) or")
    assert field_help(Experiment)["image_source"].endswith("wherever they run.")


def test_help_texts_are_plain_and_complete():
    texts = {command: _help(command) for command in COMMANDS} | {"top": _help()}
    for name, text in texts.items():
        assert not re.search(r"``|:(func|class|mod|data|meth):", text), name
        assert "see the module" not in text and "folded into\n" not in text
    assert all(command in texts["top"] for command in COMMANDS)
    for command in ("demo", "reproduce"):
        options = re.split(r"\n  (?=-)", texts[command].split("options:", 1)[1])[1:]
        for option in options:
            if not option.startswith(("-h", "--force")):
                assert "default: " in " ".join(option.split()), option
    assert "(default: the preset's; 0.01 where the preset sets none)" in " ".join(texts["reproduce"].split())
    precision = re.sub(r"\s", "", texts["reproduce"].rsplit("--precision PRECISION", 1)[1].split("--compile")[0])
    assert all(re.sub(r"\s", "", f"{name}: {meaning}") in precision for name, meaning in PRECISIONS.items())
    assert "--out-dir FOLDER" in texts["merge"] and "--out " not in texts["merge"]
