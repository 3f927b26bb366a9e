"""Tracking that never costs training: every record goes to a journal in the run folder
first, and a background writer delivers the journal to MLflow, in order, when it can.

Why not MLflow's own asynchronous logging (``log_batch(..., synchronous=False)``)? It
keeps its queue in memory (lost with the process, unbounded during an outage), delivers
metrics, tags and artifacts through separate queues, retries inside each request for
minutes, and reports failures only when the run ends. A run on a preemptible machine
needs the opposite: a queue that survives ``kill -9``, one order for everything, and a
writer that waits out an outage while the training goes on.
"""
