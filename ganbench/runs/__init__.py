"""Runs as a service: reopening a run, its status, the run a command works on, resuming."""

from ganbench._moved import moved_attribute


def __getattr__(name: str) -> object:
    return moved_attribute(__name__, "ganbench.runs.reopen", name)
