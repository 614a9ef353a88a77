"""What a run does while it trains, beside training: Ctrl-C at a step boundary and the progress bar."""

from __future__ import annotations

import contextlib
import signal
import threading
import types
from typing import Any

from fasbench.console import err


@contextlib.contextmanager
def interrupt_at_step_boundary():
    """Turn the first Ctrl-C (SIGINT) into a request the loop honours after the current step.

    The loop then saves a consistent checkpoint and stops; a second Ctrl-C interrupts at once (the
    last periodic checkpoint stands). Off the main thread, signals cannot be caught: plain behaviour.
    """
    state = types.SimpleNamespace(requested=False)
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def request(signum: int, frame: Any) -> None:
        state.requested = True
        err().print("[yellow]Ctrl-C: stopping after this step (press again to stop at once)[/]")
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)


class ProgressBar:
    """A rich progress bar with loss and steps/s, or nothing when progress is off."""

    def __init__(self, enabled: bool, total: int, completed: int, name: str) -> None:
        self.progress = None
        if not enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=err(),
            transient=False,
        )
        self.task = self.progress.add_task(name, total=total, completed=completed, loss=float("nan"), rate="")
        self.progress.start()

    def update(self, step: int, loss: float) -> None:
        if self.progress is not None:
            task = self.progress.tasks[self.task]
            rate = f"{task.speed:.1f} step/s" if task.speed else ""
            self.progress.update(self.task, completed=step, loss=loss, rate=rate)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
