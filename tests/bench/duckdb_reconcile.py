"""The reconciliation as one DuckDB query over the same two FOCUS files (the comparison of
scripts/bench): a full outer join on (ResourceId, SkuId, ChargePeriodStart), counting
missing, unexpected and amount-mismatched rows.

    python duckdb_reconcile.py LEDGER STATEMENT

DuckDB's parallel CSV reader refuses some files (the 10M-row wide statement: "does not
support a full read on this file"); the query then runs again with `parallel=false`, as
the error asks, and says so on stderr (the time measured includes the refused attempt).
"""
import sys

import duckdb

ledger, statement = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads TO 2")

def query(options):
    return f"""
WITH l AS (SELECT ResourceId, SkuId, ChargePeriodStart, CAST(BilledCost AS DECIMAL(18,6)) AS cost FROM read_csv('{ledger}', header=true, all_varchar=true{options})),
     s AS (SELECT ResourceId, SkuId, ChargePeriodStart, SUM(CAST(BilledCost AS DECIMAL(18,6))) AS cost FROM read_csv('{statement}', header=true, all_varchar=true{options}) GROUP BY ALL)
SELECT
  count(*) FILTER (WHERE s.ResourceId IS NULL) AS missing_at_member,
  count(*) FILTER (WHERE l.ResourceId IS NULL) AS unexpected_at_member,
  count(*) FILTER (WHERE l.ResourceId IS NOT NULL AND s.ResourceId IS NOT NULL AND abs(l.cost - s.cost) > 0.000001) AS amount_mismatch
FROM l FULL OUTER JOIN s USING (ResourceId, SkuId, ChargePeriodStart)
"""


try:
    print(con.execute(query("")).fetchall())
except duckdb.NotImplementedException as e:
    print(f"duckdb: {str(e).splitlines()[0]} -- again with parallel=false", file=sys.stderr)
    print(con.execute(query(", parallel=false")).fetchall())
