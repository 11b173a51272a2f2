"""The progress line of a running sweep: how many cells are in each status.

It only shows counts it is handed (an executor computes them with
`bench.executors.cell_states`); it asks nobody anything itself.
"""

from __future__ import annotations

import sys
from collections import Counter

# Always shown, in this order.
STATUSES = ("done", "diverged", "failed", "running", "pending")
# Shown only when some cell has them: trained (its evaluation raised),
# blocked (its upstream training run has not finished, or failed), corrupt
# (a file cannot be read), queued and preempted (SLURM).
OCCASIONAL = ("trained", "blocked", "corrupt", "queued", "preempted")
FINISHED = ("done", "diverged", "failed", "trained")


def summary(counts: Counter, total: int) -> str:
    """'done 3, diverged 0, failed 1, running 0, pending 2, blocked 1 (of 7)'."""
    order = STATUSES + tuple(k for k in OCCASIONAL if counts[k])
    return ", ".join(f"{k} {counts[k]}" for k in order) + f" (of {total})"


class Progress:
    """One line of counts: redrawn in place on a terminal, a new line per finished cell in a log."""

    def __init__(self, total: int):
        self.total = total
        self.live = None
        self.last = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(stderr=True), refresh_per_second=4, transient=False)
            self.live.start()

    def update(self, counts: Counter) -> None:
        finished = sum(counts[k] for k in FINISHED)
        line = (
            f"[{finished}/{self.total}] done {counts['done']}  diverged {counts['diverged']}  "
            f"failed {counts['failed']}  running {counts['running']}  pending {counts['pending']}"
        )
        line += "".join(f"  {k} {counts[k]}" for k in OCCASIONAL if counts[k])
        # A live line redraws on any change; a log file gets a line per finished cell.
        key = line if self.live is not None else (finished, counts["blocked"])
        if key == self.last:
            return
        self.last = key
        if self.live is not None:
            self.live.update(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self, counts: Counter) -> None:
        self.update(counts)
        if self.live is not None:
            self.live.stop()
