"""The training runner: plans a run from its inputs, trains, tracks."""
