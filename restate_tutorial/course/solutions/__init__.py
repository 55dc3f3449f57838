"""One solution per exercise of the notebooks. Reveal one with ``exercises.show(module)``."""
