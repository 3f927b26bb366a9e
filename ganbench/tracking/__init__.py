"""Where records go: the MLflow store, the run tracker, provenance tags and the outbox."""

from ganbench._moved import moved_attribute


def __getattr__(name: str) -> object:
    return moved_attribute(__name__, "ganbench.tracking.tracker", name)
