"""The benchmarks' peak-memory figure of a child process is the child's own, not its parent's.

Linux carries a process' high-water mark (what ``ru_maxrss`` reports) into the child it forks and
keeps it through exec; the identity benchmark's dbt child reported 365.6 MB where dbt itself peaks
at about 150 MB, because the benchmark process had just generated 400k customers.
"""

from __future__ import annotations

import subprocess
import sys

from benchmarks.common import PeakRss, vm_hwm_kb

MB = 1024

CHILD = """
import sys, time
held = bytearray(40 * 1024 * 1024)
for i in range(0, len(held), 4096):
    held[i] = 1
sys.stdout.write("ready\\n")
sys.stdout.flush()
time.sleep(0.5)
"""


def test_a_childs_peak_leaves_out_the_parents():
    parent = bytearray(300 * 1024 * 1024)
    for i in range(0, len(parent), 4096):
        parent[i] = 1
    assert vm_hwm_kb() >= 300 * MB
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    peak = PeakRss(child.pid, interval=0.02)
    peak.start()
    assert child.stdout.readline() == "ready\n"
    child.stdout.close()
    assert child.wait() == 0
    peak_kb = peak.stop()
    del parent
    assert peak_kb is not None
    # the child's 40 MB and its interpreter, not the parent's 300 MB
    assert 40 * MB <= peak_kb < 150 * MB


def test_a_gone_process_has_no_peak():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert vm_hwm_kb(child.pid) is None
    peak = PeakRss(child.pid, interval=0.01)
    peak.start()
    assert peak.stop() is None
