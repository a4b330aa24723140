from __future__ import annotations

import os
import resource
import time

import numpy as np
import pytest

from tunehouse.usage import ResourceMeter, _reset_peak, memory_limit


def test_cpu_and_wall_are_measured_as_deltas():
    with ResourceMeter() as m:
        t = time.process_time()  # 0.3 s of CPU, however busy the machine (wall time may be more)
        x = 0
        while time.process_time() - t < 0.3:
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


def test_memory_limit_fails_an_allocation_past_it_and_is_restored():
    before = resource.getrlimit(resource.RLIMIT_DATA)
    with memory_limit(300):
        small = np.ones(100 * 2**20 // 8)  # 100 MB, touched: within the limit
        del small
    message = r"exceeded its memory limit of 300 MB \(resources.memory_mb\)"
    with pytest.raises(MemoryError, match=message), memory_limit(300):
        np.ones(1500 * 2**20 // 8)
    with pytest.raises(MemoryError, match=message), memory_limit(300):
        [bytes(2**20) for _ in range(1500)]  # many small allocations hit it too
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
    # after the block, the process is unlimited again: RLIMIT_DATA is checked when the memory is
    # mapped, so an untouched array proves it without writing 1.5 GB
    big = np.empty(1500 * 2**20 // 8)
    assert big.nbytes == 1500 * 2**20
    del big
    with memory_limit(None):
        assert resource.getrlimit(resource.RLIMIT_DATA) == before
