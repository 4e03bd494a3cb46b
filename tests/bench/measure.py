"""Runs a command and prints its wall time and peak memory (max RSS of the child).

    python3 measure.py LABEL -- COMMAND ARGS...
"""
import resource
import subprocess
import sys
import time

label = sys.argv[1]
command = sys.argv[sys.argv.index("--") + 1:]
started = time.monotonic()
result = subprocess.run(command, stdout=subprocess.DEVNULL)
elapsed = time.monotonic() - started
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{label}: {elapsed:.2f} s, peak {peak_kib / 1024:.0f} MiB, exit {result.returncode}")
