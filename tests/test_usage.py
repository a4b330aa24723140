from __future__ import annotations

import os
import time

import numpy as np

from tunehouse.usage import ResourceMeter, _reset_peak


def test_cpu_and_wall_are_measured_as_deltas():
    with ResourceMeter() as m:
        t = time.perf_counter()
        x = 0
        while time.perf_counter() - t < 0.3:
            x += 1
    u = m.usage
    assert 0.29 < u.wall_s < 2.0
    assert 0.2 < u.cpu_s <= u.wall_s + 0.05
    with ResourceMeter() as m2:
        time.sleep(0.2)
    assert m2.usage.cpu_s < 0.1  # a second trial in the same process starts from zero
    assert m2.usage.pid == os.getpid()


def test_peak_rss_is_per_trial():
    with ResourceMeter() as big:
        a = np.ones(300 * 1024 * 1024 // 8)  # 300 MB, touched
        a.sum()
        del a
    with ResourceMeter() as small:
        b = np.ones(1024)
        b.sum()
    assert big.usage.peak_rss_mb > small.usage.peak_rss_mb + 250
    if _reset_peak():  # exact per-trial peaks need a resettable VmHWM
        assert small.usage.peak_rss_mb < big.usage.peak_rss_mb - 250
