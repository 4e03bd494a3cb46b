//! Tenant invoices and the three-way check: one use case for `GET /v1/invoices`,
//! `alliance invoice` and the reconciliation report.
//!
//! Owns choosing what an invoice is made of: the tenant's metered usage of the month (all
//! members), its billing currency, the configured reference rates and the reference day
//! (the month's last day, or today while the month is in progress); the arithmetic is
//! `alliance_core::invoice`.
//!
//! **Invariant:** an invoice is computed from the same usage lines as the ledger and the
//! FOCUS export, so the three-way check (invoice lines in the member's currency = the
//! member's ledger) holds by construction; it is still computed and reported, so that a
//! change breaking it shows.

use alliance_core::billing::Period;
use alliance_core::invoice::{invoice, member_check, Invoice, InvoiceError};
use alliance_core::rates::ReferenceRates;

use crate::billing::Books;
use crate::error::{ApiError, ErrorCode};
use crate::store::{Store, TenantRow};

/// The reference day of `period` at `now_ms`: its last day, or today while it runs.
pub fn reference_day(period: Period, now_ms: i64) -> String {
    let last = period.end_ms() - 86_400_000;
    crate::time::rfc3339(last.min(now_ms))[..10].to_owned()
}

/// An invoice error as the API's problem.
pub fn problem(e: &InvoiceError) -> ApiError {
    match e {
        InvoiceError::Currency { .. } => ApiError::internal(e.to_string()),
        InvoiceError::NoRates { .. } | InvoiceError::Rates(_) => {
            ApiError::new(ErrorCode::InvoiceRatesMissing, e.to_string())
        }
    }
}

/// `tenant`'s invoice for `period`, metered up to `now_ms`.
pub async fn tenant_invoice(
    store: &Store,
    books: &Books,
    rates: Option<&ReferenceRates>,
    tenant: &TenantRow,
    period: Period,
    now_ms: i64,
) -> Result<Invoice, ApiError> {
    let id = tenant.policy.id.as_str();
    let usage =
        crate::billing::usage(store, period, Some(id), None, &books.catalogues, now_ms).await?;
    invoice(
        id,
        period,
        &tenant.billing_currency,
        &usage.lines,
        rates,
        &reference_day(period, now_ms),
    )
    .map_err(|e| problem(&e))
}

/// The three-way check of `member` for `period` on its ledger `lines`: every tenant's
/// invoice lines of the member, in the member's currency, against the ledger, as the
/// reconciliation report's `invoices` section.
pub async fn three_way(
    store: &Store,
    rates: Option<&ReferenceRates>,
    member: &str,
    period: Period,
    lines: &[alliance_core::billing::UsageLine],
    now_ms: i64,
) -> Result<serde_json::Value, ApiError> {
    let tenants: std::collections::BTreeSet<&str> =
        lines.iter().map(|l| l.tenant.as_str()).collect();
    let mut invoices = Vec::new();
    for tenant in tenants {
        let currency = match alliance_core::TenantId::parse(tenant) {
            Ok(id) => store
                .tenant(&id)
                .await?
                .map_or_else(alliance_core::rates::Currency::eur, |t| t.billing_currency),
            Err(_) => alliance_core::rates::Currency::eur(),
        };
        match invoice(
            tenant,
            period,
            &currency,
            lines,
            rates,
            &reference_day(period, now_ms),
        ) {
            Ok(i) => invoices.push(i),
            Err(e) => return Ok(serde_json::json!({ "holds": null, "error": e.to_string() })),
        }
    }
    let (invoiced, ledger) = member_check(member, &invoices, lines);
    let currency = lines.first().map(|l| l.currency.clone());
    Ok(serde_json::json!({
        "member_currency": currency,
        "invoiced": invoiced,
        "ledger": ledger,
        "tenants": invoices.len(),
        "holds": invoiced == ledger,
    }))
}
