"""Figures of the paper, drawn from results (tensors, ``LSTResult``, ``PathWidths``,
``BlindSpotGrid``, ``PathSaliency``, ``Comparison``, ``ModelReport``, ``LayerSimilarity``,
the taxonomy's judgements), never from models:
computing lives in ``lst`` and ``analysis``.

Interactive figures are plotly (written as HTML, or as PNG, SVG or PDF where kaleido
and a Chromium are installed), image panels matplotlib (written as PNG, SVG or PDF;
animations as GIF or MP4). Every figure takes a ``caption``, the line from
:func:`blindspots_nb.tools.provenance.caption` that says what produced it.

One module per kind of result: ``images`` (tensors as arrays, PNG and data URIs, the
difference of two images), ``figures`` (titles with captions, :func:`save_figure`),
``curves`` (confidence along a traversal), ``triangles`` (confidence over triangles and
along the star of segments), ``paths`` (the grid of blind spots, the path of one
traversal, the path's width), ``saliency`` (attribution maps over images, one overlay
for the figures and the live explorer), ``compare`` (adversarial examples beside blind
spots), ``report`` (the reproduction report's examples), ``layers`` (layer x iteration
heatmaps of similarity along a path), ``manifold`` (images beside their nearest renderings);
``widgets`` (a figure as a plotly widget for the live apps, apart: it imports ipywidgets).
The results in words live in :mod:`blindspots_nb.analysis.words`.
"""

from typing import TYPE_CHECKING

from ..tools.lazy import lazy_exports

if TYPE_CHECKING:  # the package's names, each imported on first use (tools.lazy reads these lines)
    from .images import difference_image, image_to_data_uri, image_to_png, to_array
    from .figures import RendererMissingError, plotly_renderer, save_figure
    from .curves import confidence_curves, confidence_figure, update_confidence_figure
    from .triangles import (CORNERS, mean_triangle_figure, star_figure, triangle_cells, triangle_contour,
                            triangle_surface)
    from .paths import blindspot_grid_figure, path_animation, path_strip, path_widths_figure, path_widths_surface
    from .saliency import SALIENCY_COLOURS, SALIENCY_TOP, saliency_correlation_figure, saliency_overlay, saliency_strip
    from .compare import adversarial_vs_blindspots_figure
    from .report import report_examples_figure
    from .layers import layer_similarity_figure
    from .manifold import nearest_renderings_figure

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
