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
