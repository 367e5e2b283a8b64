"""Errors that stop a run with a one-line message (bad input, unusable infrastructure).

Per-sample problems never raise past a stage: they become rows with a status and an error text.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: the message names the input and the fix."""


class RunAborted(RuntimeError):
    """Infrastructure failed for a whole shard (STAC API down, Overture files unreadable, model server gone);
    the shard is not written so a resume retries it."""
