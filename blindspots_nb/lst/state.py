"""The saved state of a :class:`~blindspots_nb.lst.traversal.Traversal` and its checks.

A saved state holds everything a traversal needs to resume (not the model, but what
identifies it: :func:`weights_sha256` and its logits on the sources). :func:`read_state`
refuses a file that is not one, or whose state the algorithm cannot have produced;
:func:`model_problem` and :func:`cache_problem` are the checks that need the model.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .. import __version__
from ..execution import Execution
from ..tools.tensors import l2_distance, label_probability, weights_sha256
from .config import LSTConfig
from .history import History

FORMAT = "blindspots_nb.Traversal"
FORMAT_VERSION = 2  # 2: the model's weights_sha256 and its logits on the sources


# The tensors of a saved state: B images (C, H, W) each, or one value per sample; and
# what format 2 added (the model's identity).
_IMAGE_STATE = ("sources", "targets", "images", "parallel", "gradient")
_SAMPLE_STATE = ("labels", "target_labels", "initial_confidence", "accepted", "accepted_total")
_MODEL_STATE = ("weights_sha256", "source_logits")
# The kind of each recorded quantity of the history (the others are floating point).
_HISTORY_KIND = {"accepted": "bool", "accepted_total": "integer"}


def _kind(tensor: torch.Tensor) -> str:
    return "bool" if tensor.dtype == torch.bool else "floating" if tensor.is_floating_point() else "integer"


def _state_problem(state: dict) -> str | None:
    """What makes a loaded Traversal state inconsistent, or None: a file that was edited,
    damaged or pieced together must not be resumed into silently wrong numbers.

    Besides types, shapes and ranges, it checks what the algorithm makes true: the parallel
    part stays in its eps box; the history holds iteration 0 and then exactly one row per
    ``record_every`` iterations up to ``iteration`` (plus the ends of ``run``), which ties
    ``iteration`` to the history (with ``record_every=0`` nothing does); and each sample's
    count of accepted steps grows by at most one per iteration between recorded rows.
    """
    model_keys = _MODEL_STATE if state.get("format_version", 0) >= 2 else ()
    required = (*_IMAGE_STATE, *_SAMPLE_STATE, "probs", "rng_state", "config", "iteration", "history", *model_keys)
    missing = [key for key in required if key not in state]
    if missing:
        return f"it lacks {missing}"
    iteration = state["iteration"]
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        return f"its iteration must be an integer >= 0, got {iteration!r}"
    try:
        config = LSTConfig(**state["config"])
    except (TypeError, ValueError) as error:
        return f"its config is invalid ({error})"
    try:
        Execution(**state.get("execution", {}))
    except (TypeError, ValueError) as error:
        return f"its execution options are invalid ({error})"
    sha256 = state.get("weights_sha256")
    if sha256 is not None and not (isinstance(sha256, str) and re.fullmatch("[0-9a-f]{64}", sha256)):
        return f"its weights_sha256 is not a sha256 (64 hex digits), got {sha256!r}"
    tensors = {key: state[key] for key in (*_IMAGE_STATE, *_SAMPLE_STATE, "probs", "rng_state", *model_keys[1:])}
    wrong = [key for key, value in tensors.items() if not isinstance(value, torch.Tensor)]
    if wrong:
        return f"{wrong} are not tensors"
    shape = tuple(tensors["sources"].shape)
    if len(shape) != 4 or shape[0] == 0:
        return f"its sources have shape {shape}, not (B, C, H, W) with B >= 1"
    probs = tensors["probs"]
    if probs.dim() != 2 or probs.shape[0] != shape[0]:
        return f"its probs have shape {tuple(probs.shape)}, not ({shape[0]}, classes)"
    expected = {**{key: shape for key in _IMAGE_STATE}, **{key: shape[:1] for key in _SAMPLE_STATE},
                "source_logits": tuple(probs.shape)}
    for key in [key for key in tensors if key in expected]:
        if tuple(tensors[key].shape) != expected[key]:
            return f"its {key} have shape {tuple(tensors[key].shape)}, but the sources {shape} need {expected[key]}"
    # the model's outputs are at least float32 (Execution.logits), the images as given
    dtypes = {key: torch.promote_types(tensors["sources"].dtype, torch.float32)
              for key in ("initial_confidence", "probs", "source_logits")}
    for key in [key for key in tensors if key in _IMAGE_STATE or key in dtypes]:
        dtype = dtypes.get(key, tensors["sources"].dtype)
        if tensors[key].dtype != dtype or not bool(torch.isfinite(tensors[key]).all()):
            return f"its {key} are not all finite numbers of dtype {dtype}"
    for key in ("sources", "targets", "images", "initial_confidence", "probs"):
        if float(tensors[key].min()) < 0 or float(tensors[key].max()) > 1:
            return f"its {key} leave [0, 1]"
    box = float(torch.tensor(config.eps, dtype=tensors["parallel"].dtype))  # the clamp's bound, rounded alike
    if float(tensors["parallel"].abs().max()) > box:
        return (f"its parallel part leaves its box [-eps, eps] (eps = {config.eps:g}): it reaches "
                f"{float(tensors['parallel'].abs().max()):.3g}")
    for key, high in (("labels", probs.shape[1] - 1), ("target_labels", probs.shape[1] - 1),
                      ("accepted_total", iteration)):
        value = tensors[key]
        if _kind(value) != "integer" or not (0 <= int(value.min()) and int(value.max()) <= high):
            return f"its {key} must be integers in [0, {high}], got {value[:8].tolist()}"
    if tensors["accepted"].dtype != torch.bool:
        return f"its accepted flags are {tensors['accepted'].dtype}, not booleans"
    return _history_problem(state["history"], iteration, config.record_every, shape, tensors["accepted_total"])


def _history_problem(history, iteration: int, every: int, shape: tuple, accepted_total: torch.Tensor) -> str | None:
    """What makes a saved history inconsistent, in itself or with the state's ``iteration``
    and ``accepted_total`` (see :func:`_state_problem`), or None."""
    if not isinstance(history, dict) or any(key not in history for key in ("iteration", *History.TENSOR_FIELDS)):
        return "its history is incomplete"
    recorded = history["iteration"]
    if any(len(history[key]) != len(recorded) for key in History.TENSOR_FIELDS if key != "images") \
            or len(history["images"]) not in (0, len(recorded)):
        return f"its history fields disagree in length (iterations recorded: {len(recorded)})"
    if any(not isinstance(i, int) or isinstance(i, bool) for i in recorded) or recorded[:1] != [0] \
            or any(a >= b for a, b in zip(recorded, recorded[1:])) or recorded[-1] > iteration:
        return f"its history's iterations must rise from 0 to at most its iteration {iteration}, got {recorded[:8]}"
    if every:
        regular = [i for i in recorded if i % every == 0]
        if len(regular) != iteration // every + 1 or any(i != k * every for k, i in enumerate(regular)):
            return (f"its iteration {iteration} does not fit its history: recording every {every} iterations, "
                    f"it would hold iterations 0, {every}, ..., {iteration // every * every}, but holds "
                    f"{regular[:8]}{' ...' if len(regular) > 8 else ''}")
    for key in History.TENSOR_FIELDS:
        want, kind = (shape if key == "images" else shape[:1]), _HISTORY_KIND.get(key, "floating")
        if any(not isinstance(row, torch.Tensor) or tuple(row.shape) != want or _kind(row) != kind
               for row in history[key]):
            return f"its history's {key} are not all {kind} tensors of shape {want}"
    before, before_total = 0, torch.zeros_like(accepted_total)
    for at, total, name in [*((i, t, f"history's accepted_total at iteration {i}")
                              for i, t in zip(recorded, history["accepted_total"])),
                            (iteration, accepted_total, "accepted_total")]:
        gained = total.long() - before_total.long()
        if int(gained.min()) < 0 or int(gained.max()) > at - before:
            return (f"its {name}, {total[:8].tolist()}, cannot follow {before_total[:8].tolist()} at iteration "
                    f"{before}: at most one step per iteration is accepted, and none is taken back")
        before, before_total = at, total
    return None



def read_state(path: Path) -> dict:
    """The state saved at ``path``; refuses a file that is not a saved Traversal, one of a
    newer format and an inconsistent state (see :func:`_state_problem`)."""
    if not path.is_file():
        raise FileNotFoundError(f"no saved traversal at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for foreign files
        raise ValueError(f"{path} is not a saved blindspots_nb Traversal ({error})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a saved blindspots_nb Traversal")
    version = state.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer blindspots_nb ({state.get('package_version')}, "
                         f"format version {version!r}); this is {__version__}")
    problem = _state_problem(state)
    if problem:
        raise ValueError(f"{path} holds an inconsistent Traversal state: {problem}")
    return state


def model_problem(model, state: dict, logits: torch.Tensor, labels: torch.Tensor,
                  initial_confidence: torch.Tensor, atol: float, rtol: float) -> str | None:
    """How ``model`` shows that it is not the one ``state`` was saved with, or None;
    ``logits``: its logits on the stored sources, ``labels`` and ``initial_confidence``:
    the stored ones, where the logits are."""
    saved, now = state.get("weights_sha256"), weights_sha256(model)
    if saved and now and saved != now:
        return (f"its parameters and buffers differ from those the traversal ran with (sha256 {now[:16]}..., "
                f"saved {saved[:16]}...): it is another model, or has other weights")
    if logits.shape != state["probs"].shape:
        return (f"it gives logits of shape {tuple(logits.shape)} for the stored sources, the traversal "
                f"{tuple(state['probs'].shape)}")
    if "source_logits" in state:
        saved_logits = state["source_logits"].to(logits)
        gap = (logits - saved_logits).abs().amax(1)
        allowed = rtol * (saved_logits.amax(1) - saved_logits.amin(1)).clamp(min=1)
        if bool((gap > allowed).any()):
            i = int((gap > allowed).nonzero()[0])
            return (f"its logits on the stored sources differ from the saved ones (source {i}: by "
                    f"{float(gap[i]):.3g}, more than rtol = {rtol:g} of their range allows, {float(allowed[i]):.3g})")
    gap = float((label_probability(logits.softmax(1), labels) - initial_confidence).abs().max())
    if gap > atol:
        return f"its source-class confidence on the stored sources differs by up to {gap:.3g} (> {atol})"
    return None


def cache_problem(stored: tuple[torch.Tensor, torch.Tensor], recomputed: tuple[torch.Tensor, torch.Tensor],
                  labels: torch.Tensor, atol: float) -> str | None:
    """Whether the stored probabilities and gradient are what they cache: the model's at
    the stored images, ``recomputed`` by one forward-backward pass; None if they are.

    Probabilities must agree within ``atol``. The gradient J^T (p - e_y) shrinks with
    the probability off the source class, m = 1 - p_y: probabilities known to ``atol``
    move it by about atol / m of its size, and rounding (bf16, another device) by less
    than its size. So each sample's stored gradient must lie within (1 + atol / m) times
    the recomputed gradient's norm of it (within its norm where m = 0, where that norm
    is zero): a scaled, sign-flipped or foreign gradient is refused.
    """
    (stored_probs, stored_gradient), (probs, gradient) = stored, recomputed
    gap = float((probs - stored_probs).abs().max())
    if gap > atol:
        return f"its probs are not the model's probabilities at its images (they differ by up to {gap:.3g} > {atol})"
    off_source = probs.scatter(1, labels[:, None], 0).sum(1).double()  # 1 - p_y without cancellation
    size = gradient.flatten(1).double().norm(dim=1)
    allowed = torch.where(off_source > 0, size * (1 + atol / off_source), size)
    miss = l2_distance(stored_gradient, gradient, torch.float64)
    if bool((miss > allowed).any()):
        i = int((miss > allowed).nonzero()[0])
        return (f"its gradient is not the model's gradient at its images (sample {i}: it is {float(miss[i]):.3g} "
                f"away, more than the {float(allowed[i]):.3g} that its norm {float(size[i]):.3g} and atol allow)")
    return None
