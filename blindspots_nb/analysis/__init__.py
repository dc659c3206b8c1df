"""What is measured on blind spots: distances (:mod:`.metrics`), confidence over
triangles and segments (:mod:`.geometry`), the grid of blind spots and path widths
(:mod:`.paths`), attribution maps (:mod:`.saliency`), adversarial attacks
(:mod:`.attacks`) and adversarial examples beside blind spots (:mod:`.compare`).
Computing only: :mod:`blindspots_nb.plots` draws the results."""
