"""Thread planning from the current load: other programs' busy cores are left to them."""

from __future__ import annotations

import subprocess
import sys
import time

from edgeagent.runtime.threads import ThreadPlanner

SPIN = "import time\nend = time.monotonic() + 3\nwhile time.monotonic() < end:\n    pass\n"


def test_a_core_kept_busy_by_another_process_is_left_to_it():
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        time.sleep(0.3)
        planner = ThreadPlanner(cores=4)
        planner.look()
        time.sleep(0.5)
        assert planner.others_busy_cores() >= 0.6
        time.sleep(0.5)  # each look closes a window: the next answer needs a new one
        assert planner.threads() <= 3
    finally:
        spinner.kill()
        spinner.wait()


def test_at_least_one_thread_however_busy():
    planner = ThreadPlanner(cores=1)
    assert planner.threads() == 1


def test_no_window_yet_means_no_evidence_and_no_waiting():
    planner = ThreadPlanner(cores=8)
    started = time.monotonic()
    assert planner.others_busy_cores() == 0.0  # the first look opens a window, it never sleeps
    assert time.monotonic() - started < 0.05
