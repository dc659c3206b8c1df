"""The live explorer: its headless state (:mod:`.state`, stepping LST between images)
and its widget view (:mod:`.view`, ipywidgets and plotly), which only draws the state."""

from .state import GIVEN_IMAGES, Explorer

__all__ = ["GIVEN_IMAGES", "Explorer"]
