//! Usage: the ledger read as spans, metered per day and rated with each member's price
//! catalogue (`alliance_core::billing`), as JSON or FOCUS CSV.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use alliance_core::billing::{meter, Period, PriceCatalogue, UsageLine};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::store::{Store, StoreResult};

/// Totals of one member's lines.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MemberTotal {
    /// Member.
    pub member: String,
    /// Currency of its catalogue.
    pub currency: String,
    /// Sum of its lines' costs.
    #[schema(value_type = String)]
    pub cost: Decimal,
    /// Lines rated at zero for want of a price.
    pub unpriced_lines: usize,
}

/// Metered and rated usage of a period.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Usage {
    /// `YYYY-MM`.
    pub period: String,
    /// One line per resource and day.
    #[schema(value_type = Vec<Object>)]
    pub lines: Vec<UsageLine>,
    /// Per member.
    pub totals: Vec<MemberTotal>,
}

/// Meters `period`, optionally for one tenant or member; `catalogues` by member id.
pub async fn usage(
    store: &Store,
    period: Period,
    tenant: Option<&str>,
    member: Option<&str>,
    catalogues: &BTreeMap<String, PriceCatalogue>,
) -> StoreResult<Usage> {
    let spans = store.usage_spans(period, tenant, member).await?;
    let mut by_member: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for span in &spans {
        by_member
            .entry(span.member.as_str())
            .or_default()
            .push(span.clone());
    }
    let empty = PriceCatalogue::default();
    let mut lines = Vec::new();
    let mut totals = Vec::new();
    for (member, spans) in by_member {
        let catalogue = catalogues.get(member).unwrap_or(&empty);
        let metered = meter(&spans, period, catalogue, crate::time::now_ms());
        totals.push(MemberTotal {
            member: member.to_owned(),
            currency: catalogue.currency().to_owned(),
            cost: metered.iter().map(|l| l.cost).sum(),
            unpriced_lines: metered.iter().filter(|l| l.unit_price.is_none()).count(),
        });
        lines.extend(metered);
    }
    Ok(Usage {
        period: period.to_string(),
        lines,
        totals,
    })
}

/// The broker's ledger of `member` for `period` as FOCUS CSV.
pub async fn ledger_focus(
    store: &Store,
    period: Period,
    member: &str,
    catalogues: &BTreeMap<String, PriceCatalogue>,
    names: &BTreeMap<String, String>,
) -> StoreResult<(Vec<u8>, Usage)> {
    let usage = usage(store, period, None, Some(member), catalogues).await?;
    let mut out = Vec::new();
    if let Err(e) = alliance_core::focus::write(&mut out, period, &usage.lines, names) {
        return Err(crate::store::StoreError::Corrupt(format!(
            "cannot write the ledger: {e}"
        )));
    }
    Ok((out, usage))
}

/// What reconciliation needs to know besides the two files.
pub async fn reconciliation_context(
    store: &Store,
    member: &str,
) -> StoreResult<(HashMap<String, String>, HashMap<String, BTreeSet<String>>)> {
    let aliases = store
        .member_holdings(member, true)
        .await?
        .into_iter()
        .filter_map(|h| h.member_resource_id.map(|own| (own, h.id)))
        .collect();
    let mut allowed = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.tenants(after.as_deref(), 500).await?;
        if page.is_empty() {
            break;
        }
        after = page.last().map(|t| t.policy.id.to_string());
        for t in page {
            allowed.insert(
                t.policy.id.to_string(),
                t.policy
                    .allowed_jurisdictions
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            );
        }
    }
    Ok((aliases, allowed))
}
