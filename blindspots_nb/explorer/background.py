"""A loop in a background thread, stopped between two of its steps: the explorer's Run and
Pause, apart from what each step does."""

from __future__ import annotations

import threading
from typing import Callable


class BackgroundLoop:
    """Calls a step in a daemon thread named ``name``, one loop at a time, until the step
    returns False, raises, or :meth:`stop` is asked."""

    def __init__(self, name: str):
        self.name = name
        self.running = False  # whether a loop is stepping (False already when it tells that it ended)
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, step: Callable[[], bool], on_running: Callable[[], None],
              on_error: Callable[[Exception], None]) -> None:
        """Call ``step()`` in a new thread while it returns True; ``on_running()`` when the
        loop starts (from this thread, before the first step) and when it ends (from its
        thread), ``on_error(error)`` before that end if a step raised. A loop already
        running is a RuntimeError."""
        if self.running:
            raise RuntimeError("a loop is running already; stop it first")
        self._stop.clear()
        self._worker = threading.Thread(target=self._loop, args=(step, on_running, on_error), name=self.name,
                                        daemon=True)
        self.running = True
        on_running()
        self._worker.start()

    def _loop(self, step, on_running, on_error) -> None:
        try:
            while not self._stop.is_set() and step():
                pass
        except Exception as error:  # a thread's traceback would go unseen: hand it over
            on_error(error)
        finally:
            self.running = False
            on_running()

    def stop(self) -> None:
        """Stop a running loop after its current step, and wait for it to end."""
        self._stop.set()
        self.wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a running loop ends; False if it still runs after ``timeout`` seconds.
        From the loop's own thread (a step or its callbacks) or before its thread has started
        (the starting ``on_running()``), return at once: waiting there would never end."""
        worker = self._worker
        if worker is not None and worker is not threading.current_thread() and worker.ident is not None:
            worker.join(timeout)
        return not self.running
