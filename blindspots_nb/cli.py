"""Command line: parses arguments and calls the library.

``blindspots-nb demo``: one traversal between two images of the model's own image source
(:func:`blindspots_nb.demo.demo`).
``blindspots-nb reproduce``: the paper's Tables 1 and 2 (:func:`blindspots_nb.protocol.reproduce`),
offline by default.
``blindspots-nb merge``: assemble the tables of a run whose shards all finished.
``blindspots-nb compare A B``: two finished runs' rows, paired by source (each image's sha256).

The options for LST's hyperparameters, the execution options and the experiment's
settings are generated from the fields of :class:`~blindspots_nb.lst.LSTConfig`,
:class:`~blindspots_nb.execution.Execution` and :class:`~blindspots_nb.protocol.Experiment`
(their help from the fields' lines in the classes' docstrings), so a new field is an
option at once. Only light modules are imported here: ``--help`` answers without torch,
and the arguments' spelling, the files and folders they name and the factory specs'
syntax are checked before torch is imported (:func:`_check_arguments`), so that a typing
mistake is told in a second, not after the seconds torch takes to import.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import inspect
import re
import sys
import typing
from pathlib import Path

from .data.sources import ImageSource
from .execution.options import PRECISIONS, Execution
from .lst.config import LSTConfig
from .models.spec_names import canonical_spec, checked_model_name, is_spec, spec_file
from .protocol.experiment import PRESETS, Experiment, check_preset, parse_shard
from .tools import atomic

_DESCRIPTION = """\
Explore the blind spots of vision models with Level Set Traversal (LST): walk from a
source image towards a target image while the model keeps the source's class and
confidence, and reproduce the paper's tables."""
_EPILOG = "Each command has its own options: blindspots-nb COMMAND --help."

# Experiment fields that are not plain options: set by the preset, --image-source/--models, or the LSTConfig options.
_NOT_OPTIONS = ("image_source", "models", "lst", "execution", "name", "note")


def plain(text: str) -> str:
    """Docstring markup as plain text: ``x`` -> x, :class:`~a.b.C` -> C, :func:`f` -> f."""
    text = re.sub(r":\w+:`~[\w.]*?(\w+)`", r"\1", text)
    return re.sub(r":\w+:`([^`]+)`", r"\1", text).replace("``", "")


def field_help(cls) -> dict[str, str]:
    """Each field's help in a dataclass's docstring: its line ``name: help`` and the more
    indented lines below it, as plain text."""
    helps, name = {}, None
    for line in inspect.cleandoc(cls.__doc__ or "").splitlines():
        field = re.match(r"(\w+): (.+)", line)
        if field:
            name, helps[field[1]] = field[1], field[2]
        elif name and line.startswith(" ") and line.strip():
            helps[name] += " " + line.strip()
        else:
            name = None
    return {key: plain(value) for key, value in helps.items()}


def _shown(value) -> str:
    """A default as the help shows it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _option_type(annotation):
    """int, float, str or bool from a field's annotation (``int | None`` -> int)."""
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    return arguments[0] if arguments else annotation


def _add_dataclass_options(parser, cls, exclude=(), preset: bool = False, defaults: dict | None = None,
                          helps: dict | None = None) -> list[str]:
    """One ``--field-name`` option per field of ``cls`` (None when not given), its help
    from the docstring (or ``helps``) with its default: the field's (or as ``defaults``
    words it), or with ``preset`` the preset's. Returns the field names."""
    hints, help_text, names = typing.get_type_hints(cls), {**field_help(cls), **(helps or {})}, []
    for field in dataclasses.fields(cls):
        if field.name in exclude:
            continue
        default = (defaults or {}).get(field.name, _shown(field.default))
        text = help_text.get(field.name, "").rstrip(".") + (
            f" (default: the preset's; {default} where the preset sets none)" if preset else f" (default: {default})")
        kind, flag = _option_type(hints[field.name]), "--" + field.name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text.replace("%", "%%"))
        else:
            parser.add_argument(flag, type=kind, default=None, help=text.replace("%", "%%"), metavar=field.name.upper())
        names.append(field.name)
    return names


def _given(args, names) -> dict:
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def lst_config(args, base: LSTConfig, names) -> LSTConfig:
    """``base`` with the LST options given on the command line."""
    return dataclasses.replace(base, **_given(args, names))


# ----------------------------------------------------------------- demo
def demo(args):
    from .demo import demo as run_demo

    weights = {_model_key(name): path for name, path in _weights_option(args.weights, args.model).items()}
    unknown = set(weights) - {_model_key(args.model)}
    if unknown:
        raise ValueError(f"--weights {sorted(unknown)[0]}=...: demo runs --model {args.model}, whose weights are "
                         f"--weights {args.model}=PATH (or --weights PATH)")
    config = lst_config(args, LSTConfig(), args.lst_fields)
    if args.record_every is None:  # about 20 points on the history curve
        config = dataclasses.replace(config, record_every=max(1, config.iterations // 20))
    execution = dataclasses.replace(Execution(), **_given(args, args.execution_fields))
    return run_demo(args.model, args.source_name, args.target_name, config, args.out_dir, args.device, execution,
                    image_source=args.image_source, weights=weights.get(_model_key(args.model)))


# ----------------------------------------------------------------- reproduce
def experiments_from_args(args) -> list[Experiment]:
    """The preset's experiments with the command line's choices applied."""
    from .protocol import preset

    experiments = preset(args.preset, args.data_root)
    if args.image_source:  # a custom experiment: these models on these images
        if not args.models:
            raise ValueError("--image-source needs --models (which models to run on it)")
        base = experiments[0]
        experiments = [Experiment(args.image_source, tuple(args.models), base.lst, base.execution,
                                  batch_size=base.batch_size, min_conf=base.min_conf, note="custom experiment")]
    elif args.models:
        unknown = [m for m in args.models if not any(m in e.models for e in experiments)]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not in preset {args.preset!r} "
                             f"({', '.join(m for e in experiments for m in e.models)}); "
                             "pass --image-source to say which images they run on")
        experiments = [dataclasses.replace(e, models=tuple(m for m in e.models if m in args.models))
                       for e in experiments if any(m in e.models for m in args.models)]
    settings = _given(args, args.experiment_fields)
    return [dataclasses.replace(e, lst=lst_config(args, e.lst, args.lst_fields),
                                execution=dataclasses.replace(e.execution, **_given(args, args.execution_fields)),
                                **settings) for e in experiments]


def _model_key(name: str) -> str:
    """A model as --weights and --model are matched: a factory spec's file made absolute."""
    return canonical_spec(name) if is_spec(name) else name


def _weights_option(values: list[str] | None, model: str | None = None) -> dict[str, str]:
    """``--weights MODEL=PATH`` options as {model: path}, each file there; with ``model``
    (demo's one model) a plain ``--weights PATH`` is that model's."""
    weights = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep and model is not None:
            name, path = model, value
        elif not sep or not name or not path:
            raise ValueError(f"--weights takes MODEL=PATH, got {value!r}")
        if not Path(path).expanduser().is_file():
            raise FileNotFoundError(f"--weights {name}={path}: no such file")
        weights[name] = path
    return weights


def reproduce(args):
    experiments = experiments_from_args(args)  # before torch: --models outside the preset is told at once
    from .protocol import RunStore, run

    if args.dry_run:
        print(run.plan_text(run.plan(experiments, device=args.device, weights=_weights_option(args.weights))))
        return None
    if not args.force:  # a resumed run keeps the execution options it recorded, unless given here
        experiments = run.as_recorded(experiments, RunStore(args.out_dir), _given(args, args.execution_fields))
    return run.reproduce(experiments, args.out_dir, device=args.device, weights=_weights_option(args.weights),
                         shard=parse_shard(args.shard) if args.shard else None, force=args.force,
                         preset=args.preset, paper_rows=args.paper_rows)


def _paper_rows_option(parser) -> None:
    parser.add_argument("--paper-rows", action=argparse.BooleanOptionalAction, default=None,
                        help="show the paper's ImageNet rows beside ours (default: shown, unless the images are a "
                             "folder:PATH of your own)")


def merge(args):
    from .protocol import merge as assemble_run

    return assemble_run(args.out_dir, paper_rows=args.paper_rows)


def _two_models(text: str) -> tuple[str, str]:
    names = tuple(name for name in text.split(",") if name)
    if len(names) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not two model names separated by a comma (A,B)")
    return names


def compare(args):
    from .protocol import compare_runs

    print(compare_runs(args.first, args.second, models=args.compared_models), end="")


# ----------------------------------------------------------------- checked before torch
def _check_arguments(args) -> None:
    """What can be checked without torch, before a command imports it: the spelling of
    --shard, --weights, --preset and image sources, the files and folders they name
    (--weights files, data roots, folder:PATH, a factory spec's .py file), the factory
    specs' syntax, registry names, and an output folder that cannot be one. A timm name and
    what a factory builds are checked once the models are imported."""
    models = getattr(args, "models", None) or [getattr(args, "model", None)]
    for name in filter(None, models):
        checked_model_name(name)
        if is_spec(name):
            spec_file(name)  # a file.py that is there
    if getattr(args, "weights", None) is not None:
        _weights_option(args.weights, getattr(args, "model", None))
    if getattr(args, "image_source", None):  # parsed here once, passed inward as an ImageSource
        args.image_source = ImageSource.of(args.image_source)
        args.image_source.check_exists("--image-source")
    if args.command == "reproduce":
        check_preset(args.preset, args.data_root)
        if args.data_root and not Path(args.data_root).expanduser().exists():
            raise FileNotFoundError(f"--data-root {args.data_root} does not exist")
        if args.shard:
            parse_shard(args.shard)
    if args.command in ("demo", "reproduce"):
        atomic.check_folder(args.out_dir, "--out-dir")


# ----------------------------------------------------------------- the parser
_DEVICE_HELP = "cpu, cuda, cuda:1, ... (default: CUDA when available, else the CPU)"
_PRECISION_HELP = "how the passes compute: " + "; ".join(f"{name}: {meaning}" for name, meaning in PRECISIONS.items())


def _out_dir_option(parser, default: str, what: str) -> None:
    """--out-dir FOLDER, the command's output folder."""
    parser.add_argument("--out-dir", default=default, metavar="FOLDER", help=f"{what} (default: {default})")


def _weights_and_device_options(parser, metavar: str, whose: str) -> None:
    """--weights (a local checkpoint for ``whose``) and --device."""
    parser.add_argument("--weights", action="append", metavar=metavar,
                        help=f"a local checkpoint for {whose} (default: the registry's published weights); for a "
                             "factory spec, a state dict of the network it wraps")
    parser.add_argument("--device", default=None, help=_DEVICE_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blindspots-nb", description=_DESCRIPTION, epilog=_EPILOG)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "demo", help="one LST traversal between two images of the model's (offline, a CPU is enough)",
        description="LST from one image towards another (by default two of the model's own image source: "
                    "bundled photos for ImageNet models, glyphs for FONTS models); writes the source, the target "
                    "and the blind spot (PNG), the confidence history (CSV) and a record of what produced them "
                    "(JSON).")
    p.add_argument("--model", default="efficientnet_lite0",
                   help="the model: a registry name such as efficientnet_lite0, fonts_cnn or resnet50 "
                        "(docs/models.md lists them), timm:NAME, or a factory spec path/to/file.py:function or "
                        "package.module:function (docs/your_model.md; default: efficientnet_lite0, shipped with "
                        "the package)")
    p.add_argument("--image-source", help="where the images come from: photos, fonts:test, imagenet:ROOT, "
                                          "cifar10:ROOT or folder:PATH (default: the model's: fonts:test for "
                                          "FONTS models, photos for the others)")
    p.add_argument("--source-name", help="the image LST starts from, by name: a photo (coffee, chelsea, camera, "
                                         "astronaut, rocket, ...), a glyph (A13) or a file name (default: the "
                                         "model's first default image: coffee for photos, a glyph A for FONTS)")
    p.add_argument("--target-name", help="the image LST walks towards, by name (default: the model's next "
                                         "default image: chelsea for photos, a glyph B for FONTS)")
    _weights_and_device_options(p, "[MODEL=]PATH", "--model")
    _out_dir_option(p, "results/demo", "where the demo writes its files")
    p.set_defaults(run=demo, lst_fields=_add_dataclass_options(
        p.add_argument_group("LST hyperparameters (default: the paper's)"), LSTConfig,
        defaults={"record_every": "iterations // 20, about 20 points on the curve"}),
        execution_fields=_add_dataclass_options(p.add_argument_group("execution"), Execution,
                                               helps={"precision": _PRECISION_HELP}))

    p = commands.add_parser(
        "reproduce", help="the paper's Tables 1 and 2 (offline preset by default)",
        description="The paper's Tables 1 and 2 by its protocol, for the models and images of a preset. A rerun "
                    "in the same output folder resumes; shards (--shard or torchrun) split the work.")
    p.add_argument("--preset", default="offline",
                   help=f"{', '.join(PRESETS)}: offline (FONTS CNNs and EfficientNet-Lite0 on bundled "
                        "photos, a CPU is enough), digits (the LeNet pair on scikit-learn's handwritten digits, a CPU "
                        "is enough), paper (the four ImageNet models; needs --data-root; meant for a "
                        "GPU) or cifar10 (the WideResNet-28-10 pair on the CIFAR-10 test batch; needs --data-root) "
                        "(default: offline)")
    p.add_argument("--data-root", help="the paper preset's ImageNet validation folder, or the cifar10 preset's "
                                       "folder holding cifar-10-batches-py/test_batch (default: none; the offline "
                                       "preset needs none)")
    p.add_argument("--models", type=lambda text: [m for m in text.split(",") if m],
                   help="comma-separated registry names (a subset of the preset), or with --image-source any "
                        "models: registry names or factory specs path/to/file.py:function or "
                        "package.module:function (default: the preset's)")
    p.add_argument("--image-source", help="run --models on these images: photos, fonts:test, imagenet:ROOT, "
                                          "cifar10:ROOT or folder:PATH (default: the preset's)")
    _weights_and_device_options(p, "MODEL=PATH", "a model")
    p.add_argument("--shard", help="i/n: do only shard i of n (sources split by batch); not under torchrun, "
                                   "which makes each process one shard (default: all the work)")
    _out_dir_option(p, "results/reproduce", "the run's output folder")
    _paper_rows_option(p)
    p.add_argument("--force", action="store_true", help="start anew: remove what an earlier run wrote in the "
                                                        "output folder, and only that (a folder holding other "
                                                        "files is refused)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (models, pool size, rounds, iterations, batches) and the estimated time, "
                        "from a few LST iterations timed on each model's first batch; writes nothing, not even the "
                        "output folder (default: off: the run itself)")
    experiment_fields = _add_dataclass_options(p.add_argument_group("experiment"), Experiment,
                                              exclude=_NOT_OPTIONS, preset=True)
    lst_fields = _add_dataclass_options(p.add_argument_group("LST hyperparameters"), LSTConfig, preset=True,
                                       exclude=("seed",))  # each batch's LST seed comes from --seed
    execution_fields = _add_dataclass_options(p.add_argument_group("execution"), Execution, preset=True,
                                             helps={"precision": _PRECISION_HELP})
    p.set_defaults(run=reproduce, experiment_fields=experiment_fields, lst_fields=lst_fields,
                   execution_fields=execution_fields)

    p = commands.add_parser("merge", help="assemble the tables once every shard of a run has finished",
                            description="Tables 1 and 2 of a run whose shards have all finished.")
    _out_dir_option(p, "results/reproduce", "the run's output folder")
    _paper_rows_option(p)
    p.set_defaults(run=merge)

    p = commands.add_parser("compare", help="two finished runs' table rows, paired by source (e.g. two precisions)",
                            description="The settings that differ between two finished runs, and each table "
                                        "number's paired difference over the sources both measured (matched by "
                                        "each image's sha256 in pool.json; the others are counted and left out).")
    p.add_argument("first", help="output folder of a finished run")
    p.add_argument("second", help="output folder of another finished run of the same models (or the same folder, "
                                  "with --models)")
    p.add_argument("--models", dest="compared_models", metavar="A,B", type=_two_models,
                   help="compare model A of the first run with model B of the second (e.g. two models of one run, "
                        "which share its pool)")
    p.set_defaults(run=compare)
    for command in (parser, *commands.choices.values()):
        command.allow_abbrev = False  # an old flag (--out) must not pass as a prefix of a new one (--out-dir)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_arguments(args)
        args.run(args)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"blindspots-nb {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # the file system said no: full, read-only, not permitted ...
        print(f"blindspots-nb {args.command}: error: {_os_error(error)}", file=sys.stderr)
        return 2
    return 0


def _os_error(error: OSError) -> str:
    """One line for a file system's refusal, and what to do about the common ones."""
    where = f" ({error.filename})" if error.filename else ""
    hint = {errno.ENOSPC: "; free some space and run the same command again: finished pieces are kept",
            errno.EROFS: "; use an output folder on a writable file system",
            errno.EACCES: "; use an output folder you may write to"}.get(error.errno, "")
    return f"{error.strerror or error}{where}{hint}"


if __name__ == "__main__":
    sys.exit(main())
