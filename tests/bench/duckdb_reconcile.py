"""The reconciliation as one DuckDB query over the same two FOCUS files (the comparison of
scripts/bench): a full outer join on (ResourceId, SkuId, ChargePeriodStart), counting
missing, unexpected and amount-mismatched rows.

    python duckdb_reconcile.py LEDGER STATEMENT
"""
import sys

import duckdb

ledger, statement = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads TO 2")
query = f"""
WITH l AS (SELECT ResourceId, SkuId, ChargePeriodStart, CAST(BilledCost AS DECIMAL(18,6)) AS cost FROM read_csv('{ledger}', header=true, all_varchar=true)),
     s AS (SELECT ResourceId, SkuId, ChargePeriodStart, SUM(CAST(BilledCost AS DECIMAL(18,6))) AS cost FROM read_csv('{statement}', header=true, all_varchar=true) GROUP BY ALL)
SELECT
  count(*) FILTER (WHERE s.ResourceId IS NULL) AS missing_at_member,
  count(*) FILTER (WHERE l.ResourceId IS NULL) AS unexpected_at_member,
  count(*) FILTER (WHERE l.ResourceId IS NOT NULL AND s.ResourceId IS NOT NULL AND abs(l.cost - s.cost) > 0.000001) AS amount_mismatch
FROM l FULL OUTER JOIN s USING (ResourceId, SkuId, ChargePeriodStart)
"""
print(con.execute(query).fetchall())
