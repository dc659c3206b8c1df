"""The explorer's background loop on its own (no model): it steps until told, stops between
steps, hands over an error, says when it starts and ends, one loop at a time. Each test
waits on events the loop sets, never on the clock."""

import threading

import pytest

from blindspots_nb.explorer.background import BackgroundLoop


class Recorder:
    """The loop's callbacks: each start/end with the loop's ``running`` and the thread it came from."""

    def __init__(self, loop):
        self.loop, self.running, self.errors, self.ended = loop, [], [], threading.Event()

    def on_running(self):
        self.running.append((self.loop.running, threading.current_thread().name))
        if not self.loop.running:
            self.ended.set()

    def on_error(self, error):
        self.errors.append((error, self.loop.running))


def test_it_steps_in_its_own_thread_until_the_step_says_so():
    loop, steps = BackgroundLoop("stepper"), []
    seen = Recorder(loop)
    loop.start(lambda: steps.append(threading.current_thread().name) or len(steps) < 5, seen.on_running,
               seen.on_error)
    assert loop.wait(timeout=60) and seen.ended.is_set()
    assert steps == ["stepper"] * 5 and not loop.running and seen.errors == []
    assert seen.running == [(True, threading.current_thread().name), (False, "stepper")]


def test_stop_ends_it_after_the_current_step():
    loop, first_step, steps = BackgroundLoop("stepper"), threading.Event(), []

    def step():
        steps.append(1)
        first_step.set()
        return True  # never ends by itself

    seen = Recorder(loop)
    loop.start(step, seen.on_running, seen.on_error)
    assert first_step.wait(timeout=60)
    loop.stop()  # returns once the loop has ended
    assert not loop.running and seen.ended.is_set() and loop.wait(timeout=0) and len(steps) >= 1


def test_an_error_is_handed_over_before_the_loop_says_it_ended():
    loop = BackgroundLoop("stepper")
    seen = Recorder(loop)
    failure = RuntimeError("the model broke")

    def step():
        raise failure

    loop.start(step, seen.on_running, seen.on_error)
    assert loop.wait(timeout=60)
    assert seen.errors == [(failure, True)] and seen.running[-1] == (False, "stepper")


def test_one_loop_at_a_time_and_waiting_from_its_own_thread_returns_at_once():
    loop, release, waited = BackgroundLoop("stepper"), threading.Event(), []
    seen = Recorder(loop)
    loop.start(lambda: not release.wait(timeout=60), lambda: waited.append(loop.wait()), seen.on_error)
    with pytest.raises(RuntimeError, match="running already"):
        loop.start(lambda: False, seen.on_running, seen.on_error)
    release.set()
    assert loop.wait(timeout=60) and not loop.running
    assert waited == [False, True]  # at the start its thread is yet to run; at the end, its own thread: no wait
