"""What a run does while it trains, beside training: Ctrl-C at a step boundary and the progress bar."""

from __future__ import annotations

import contextlib
import signal
import threading
import types
from typing import Any

from fasbench.console import err

PREEMPTION_SIGNALS = tuple(getattr(signal, name) for name in ("SIGUSR1", "SIGUSR2") if hasattr(signal, name))


@contextlib.contextmanager
def interrupt_at_step_boundary():
    """Turn the first Ctrl-C (SIGINT) into a request the loop honours after the current step.

    The loop then saves a consistent checkpoint and stops; a second Ctrl-C interrupts at once (the
    last periodic checkpoint stands). Off the main thread, signals cannot be caught: plain behaviour.

    A scheduler's preemption signal (SIGUSR1 or SIGUSR2) is deferred the same way when a Python handler is
    installed for it (submitit's, in a SLURM job): the loop checkpoints at the step boundary, then calls
    ``state.handoff()``, which runs that handler (submitit requeues the job and exits). Without such a
    handler the signal keeps its default behaviour.
    """
    state = types.SimpleNamespace(requested=False, handoff=None)
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def request(signum: int, frame: Any) -> None:
        state.requested = True
        err().print("[yellow]Ctrl-C: stopping after this step (press again to stop at once)[/]")
        signal.signal(signal.SIGINT, previous)

    def preempted(signum: int, frame: Any) -> None:
        scheduler = wrapped[signum]
        state.requested = True
        state.handoff = lambda: scheduler(signum, None)
        err().print(f"[yellow]{signal.Signals(signum).name}: preemption; stopping after this step[/]")

    previous = signal.signal(signal.SIGINT, request)
    wrapped = {sig: signal.getsignal(sig) for sig in PREEMPTION_SIGNALS}
    wrapped = {sig: handler for sig, handler in wrapped.items() if callable(handler)}
    for sig in wrapped:
        signal.signal(sig, preempted)
    try:
        yield state
    finally:
        signal.signal(signal.SIGINT, previous)
        for sig, handler in wrapped.items():
            signal.signal(sig, handler)


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
