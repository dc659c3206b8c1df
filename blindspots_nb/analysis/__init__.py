"""What is measured on blind spots: distances (:mod:`.metrics`), confidence over
triangles and segments (:mod:`.geometry`), the grid of blind spots and path widths
(:mod:`.paths`), attribution maps (:mod:`.saliency`), adversarial attacks
(:mod:`.attacks`), adversarial examples beside blind spots (:mod:`.compare`), the FONTS
generator's manifolds and oracle (:mod:`.manifold`) and the taxonomy of adversarial examples
and blind spots it judges (:mod:`.taxonomy`), and the similarity of each layer's
representation along a path to its source and target (:mod:`.layers`); and the results
in words, the sentences and captions shown beside them (:mod:`.words`).
No drawing: :mod:`blindspots_nb.plots` draws the results."""
