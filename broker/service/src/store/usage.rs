//! Reading the usage ledger as spans: when each resource was live.

use std::collections::BTreeMap;

use alliance_core::billing::{Period, UsageSpan};
use alliance_core::{sku_of, Jurisdiction, MemberId, ResourceShape, ResourceType, TenantId};

use super::{col, json_col, parsed_col, Store, StoreResult};

impl Store {
    /// Spans of resources live at some point of `period`, optionally for one tenant or member.
    pub async fn usage_spans(
        &self,
        period: Period,
        tenant: Option<&str>,
        member: Option<&str>,
    ) -> StoreResult<Vec<UsageSpan>> {
        let rows = sqlx::query(
            "SELECT s.resource_id, s.at AS start_at, e.at AS stop_at, s.tenant_id, s.member_id, s.resource_type, s.jurisdiction, s.name, s.spec \
             FROM usage_events s LEFT JOIN usage_events e ON e.resource_id = s.resource_id AND e.event = 'stop' \
             WHERE s.event = 'start' AND s.at < $1 AND (e.at IS NULL OR e.at > $2) \
             AND ($3 IS NULL OR s.tenant_id = $3) AND ($4 IS NULL OR s.member_id = $4) ORDER BY s.resource_id",
        )
        .bind(period.end_ms())
        .bind(period.start_ms())
        .bind(tenant)
        .bind(member)
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let shape: ResourceShape = json_col(row, "spec")?;
            let resource_type = parsed_col(row, "resource_type", ResourceType::parse)?;
            let (sku, units) = sku_of(resource_type, &shape);
            out.push(UsageSpan {
                resource_id: col(row, "resource_id")?,
                resource_name: col(row, "name")?,
                resource_type,
                tenant: parsed_col(row, "tenant_id", TenantId::parse)?,
                member: parsed_col(row, "member_id", MemberId::parse)?,
                jurisdiction: parsed_col(row, "jurisdiction", Jurisdiction::parse)?,
                sku,
                units,
                start_ms: col(row, "start_at")?,
                end_ms: col(row, "stop_at")?,
            });
        }
        self.split_at_changes(out, period).await
    }

    /// Splits each span where its resource changed SKU (a resize): the old SKU until the
    /// change, the new one from it.
    async fn split_at_changes(
        &self,
        spans: Vec<UsageSpan>,
        period: Period,
    ) -> StoreResult<Vec<UsageSpan>> {
        let rows = sqlx::query(
            "SELECT c.resource_id, c.at, c.spec, r.resource_type FROM usage_changes c JOIN resources r ON r.id = c.resource_id \
             WHERE c.at < $1 ORDER BY c.resource_id, c.at, c.operation_id",
        )
        .bind(period.end_ms())
        .fetch_all(&self.read)
        .await?;
        if rows.is_empty() {
            return Ok(spans);
        }
        let mut changes: BTreeMap<String, Vec<(i64, String, rust_decimal::Decimal)>> =
            BTreeMap::new();
        for row in &rows {
            let shape: ResourceShape = json_col(row, "spec")?;
            let resource_type = parsed_col(row, "resource_type", ResourceType::parse)?;
            let (sku, units) = sku_of(resource_type, &shape);
            changes.entry(col(row, "resource_id")?).or_default().push((
                col(row, "at")?,
                sku,
                units,
            ));
        }
        let mut out = Vec::with_capacity(spans.len());
        for span in spans {
            let Some(list) = changes.get(&span.resource_id) else {
                out.push(span);
                continue;
            };
            let mut current = span;
            for (at, sku, units) in list {
                let ends_later = current.end_ms.is_none_or(|end| *at < end);
                if *at <= current.start_ms || !ends_later {
                    if *at <= current.start_ms {
                        current.sku = sku.clone();
                        current.units = *units;
                    }
                    continue;
                }
                let mut next = current.clone();
                current.end_ms = Some(*at);
                next.start_ms = *at;
                next.sku = sku.clone();
                next.units = *units;
                out.push(current);
                current = next;
            }
            out.push(current);
        }
        Ok(out)
    }

    /// Usage events per member, for tests and metrics.
    pub async fn usage_event_counts(&self) -> StoreResult<BTreeMap<String, i64>> {
        let rows = sqlx::query("SELECT event, COUNT(*) AS n FROM usage_events GROUP BY event")
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| Ok((col(r, "event")?, col(r, "n")?)))
            .collect()
    }
}
