"""The paper's findings a run's sources can go against, each with the column that sorts the
sources furthest against it first (the browser's menu "sources against the paper")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Contradiction:
    """Sources that go against one of the paper's findings: the sources sorted by ``column``."""

    name: str
    column: str
    lowest_first: bool
    sentence: str


CONTRADICTIONS = (
    Contradiction("lowest path confidence", "path_conf", True,
                  "The paper finds the straight paths from a source to its blind spots stay confident (Avg Path "
                  "Conf 0.73-0.96); these sources have the least confidence along them."),
    Contradiction("deepest dip on a path", "edge_min", True,
                  "The paper finds the paths connected at high confidence; these sources' paths fall furthest "
                  "below p_src somewhere between the source and a blind spot."),
    Contradiction("largest RMSE to target", "rmse_max", False,
                  "The paper finds blind spots nearly indistinguishable from their targets (RMSE 0.008-0.046); "
                  "these sources have the blind spot furthest from its target."),
    Contradiction("largest confidence drop", "drop_max", False,
                  "LST keeps the source-class confidence within delta of its start; these sources have the blind "
                  "spot whose confidence fell most below the source's."),
    Contradiction("smallest high-confidence triangle", "frac_0.1", True,
                  "The paper finds much of a triangle within 0.1 of p_src (Frac d=0.1: 0.43-0.79); these sources "
                  "have the least of it."),
)
