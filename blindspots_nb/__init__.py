"""blindspots_nb: explore the blind spots of vision models with Level Set Traversal."""

__version__ = "0.1.0"
