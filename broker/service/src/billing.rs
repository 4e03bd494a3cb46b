//! Usage: the ledger read as spans, metered per day and rated with each member's price
//! catalogue (`alliance_core::billing`), as JSON or FOCUS CSV, and members' statements.
//! Spans still open are metered up to the `now_ms` the caller passes (its clock).

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
    now_ms: i64,
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
        let metered = meter(&spans, period, catalogue, now_ms);
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

/// Each member's price catalogue and display name: what rating and FOCUS writing need.
#[derive(Debug, Clone, Default)]
pub struct Books {
    /// Catalogues by member id.
    pub catalogues: BTreeMap<String, PriceCatalogue>,
    /// Provider names by member id.
    pub names: BTreeMap<String, String>,
}

impl Books {
    /// From the running broker's registry.
    pub fn from_registry(members: &crate::members::MemberRegistry) -> Self {
        let mut books = Self::default();
        for entry in members.all() {
            books
                .catalogues
                .insert(entry.id().to_string(), entry.catalogue());
            books
                .names
                .insert(entry.id().to_string(), entry.config.name.clone());
        }
        books
    }

    /// From a config file and the members that joined by application (for the CLI).
    pub async fn from_config(config: &crate::config::Config, store: &Store) -> StoreResult<Self> {
        let mut books = Self::default();
        for m in &config.members {
            books.catalogues.insert(
                m.id.get_ref().to_string(),
                PriceCatalogue::new(&m.prices).unwrap_or_default(),
            );
            books
                .names
                .insert(m.id.get_ref().to_string(), m.name.clone());
        }
        for (d, _) in store.application_members().await? {
            books.catalogues.insert(
                d.id.to_string(),
                PriceCatalogue::new(&d.prices).unwrap_or_default(),
            );
            books.names.insert(d.id.to_string(), d.name.clone());
        }
        Ok(books)
    }
}

/// Where a statement came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementSource {
    /// Uploaded for (member, period); takes precedence.
    Uploaded,
    /// Fetched from the member through its adapter.
    Member,
}

impl StatementSource {
    /// `uploaded` or `member`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Uploaded => "uploaded",
            Self::Member => "member",
        }
    }
}

/// Why a statement could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StatementError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The member failed to answer.
    #[error("cannot fetch the member's statement: {}", .0.message)]
    Member(alliance_adapter_api::AdapterError),
}

/// A member's statement for a period: the uploaded one, else the member's own; `None`
/// when there is neither.
pub async fn member_statement(
    store: &Store,
    adapter: &dyn alliance_adapter_api::MemberAdapter,
    member: &str,
    period: &str,
) -> Result<Option<(String, StatementSource)>, StatementError> {
    if let Some(uploaded) = store.statement(member, period).await? {
        return Ok(Some((uploaded, StatementSource::Uploaded)));
    }
    let ctx = alliance_adapter_api::CallContext::new(
        None,
        format!("statement-{member}-{period}"),
        std::time::Duration::from_secs(60),
    );
    let fetched = adapter
        .statement(&ctx, period)
        .await
        .map_err(StatementError::Member)?;
    Ok(fetched.map(|csv| (csv, StatementSource::Member)))
}
