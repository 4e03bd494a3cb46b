"""One line from oha's JSON report: served rate, share of the offered rate, percentiles.

usage: oha_summary.py REPORT.json OFFERED_PER_SECOND
Latencies are oha's with --latency-correction: each request timed from when it was due.
"""
import json
import sys

report = json.load(open(sys.argv[1]))
offered = float(sys.argv[2])
summary = report["summary"]
codes = report.get("statusCodeDistribution") or {}
ok = sum(n for code, n in codes.items() if code.startswith("2"))
bad = sum(n for code, n in codes.items() if not code.startswith("2"))
# Requests still in flight when the run's time is up are cut by oha, not failed.
errors = sum(n for kind, n in (report.get("errorDistribution") or {}).items() if "deadline" not in kind)
served = ok / summary["total"] if summary["total"] else 0.0
p = report["latencyPercentiles"]
ms = lambda v: "-" if v is None else f"{v * 1000:.2f}"
print(
    f"served {served:,.0f}/s ({served / offered:.1%} of offered) "
    f"p50 {ms(p.get('p50'))} ms p99 {ms(p.get('p99'))} ms p99.9 {ms(p.get('p99.9'))} ms "
    f"non-2xx {bad} errors {errors}"
)
