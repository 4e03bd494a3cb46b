//! Reconciliation: a member's statement for a period against the broker's ledger, the one
//! use case behind `POST /v1/reconciliations` and `alliance reconcile --period --member`.
//!
//! The ledger is metered and rated from the usage events (`billing`) and joined as typed
//! lines with the statement's rows (`alliance_core::reconcile`): it is never written to CSV
//! and parsed back. The statement is the caller's (a file, an upload, the member's own).

use alliance_core::billing::Period;
use alliance_core::reconcile::{reconcile, FocusError, FocusReader, FocusRow, Outcome, Tolerance};
use rust_decimal::Decimal;

use crate::billing::{Books, StatementSource, Usage};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// Why a reconciliation could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The member is not one of the alliance.
    #[error("`{0}` is not a member of this alliance")]
    UnknownMember(String),
    /// The statement is not valid FOCUS.
    #[error("the member's statement is not valid FOCUS: {0}")]
    StatementInvalid(FocusError),
    /// The broker's own ledger broke a FOCUS rule (a bug).
    #[error("the ledger is not valid FOCUS: {0}")]
    Ledger(FocusError),
}

impl From<ReconcileError> for ApiError {
    fn from(error: ReconcileError) -> Self {
        match error {
            ReconcileError::Store(e) => e.into(),
            ReconcileError::UnknownMember(member) => {
                ApiError::invalid_field(format!("`member`: `{member}` is not a member"))
            }
            ReconcileError::StatementInvalid(e) => ApiError::new(
                ErrorCode::StatementInvalid,
                format!("the member's statement is not valid FOCUS: {e}"),
            )
            .with_extensions(serde_json::json!({ "row": e.row, "column": e.column })),
            e @ ReconcileError::Ledger(_) => ApiError::internal(e),
        }
    }
}

/// A reconciliation's outcome with the ledger it was made from.
#[derive(Debug)]
pub struct Reconciled {
    /// The classification of every difference.
    pub outcome: Outcome,
    /// The metered ledger of the member for the period.
    pub usage: Usage,
}

/// Reconciles `statement` (FOCUS CSV) of `member` for `period` with the ledger, metered up
/// to `now_ms`.
pub async fn reconcile_member(
    store: &Store,
    books: &Books,
    member: &str,
    period: Period,
    statement: &[u8],
    tolerance: Tolerance,
    now_ms: i64,
) -> Result<Reconciled, ReconcileError> {
    if !books.catalogues.contains_key(member) {
        return Err(ReconcileError::UnknownMember(member.to_owned()));
    }
    let usage =
        crate::billing::usage(store, period, None, Some(member), &books.catalogues, now_ms).await?;
    let (aliases, allowed) = crate::billing::reconciliation_context(store, member).await?;
    let statement_rows = FocusReader::new(statement)
        .map_err(ReconcileError::StatementInvalid)?
        .within(period);
    let ledger_rows = usage.lines.iter().map(|l| Ok(FocusRow::from(l)));
    let outcome = reconcile(ledger_rows, statement_rows, tolerance, &aliases, &allowed).map_err(
        |(which, e)| {
            if which == "ledger" {
                ReconcileError::Ledger(e)
            } else {
                ReconcileError::StatementInvalid(e)
            }
        },
    )?;
    Ok(Reconciled { outcome, usage })
}

/// A reconciliation the API was asked for.
#[derive(Debug, Clone)]
pub struct Request {
    /// The month.
    pub period: Period,
    /// The member.
    pub member: String,
    /// What difference is tolerated.
    pub tolerance: Tolerance,
}

/// The clock-skew tolerance of `member` when the request names none: its
/// `clock_skew_seconds` (5 unless configured).
pub fn default_clock_skew(state: &AppState, member: &str) -> u32 {
    state
        .members
        .get(member)
        .map_or(alliance_core::reconcile::DEFAULT_CLOCK_SKEW_SECONDS, |m| {
            m.config.clock_skew_seconds
        })
}

/// Checks a member's statement for `period` (FOCUS, every row inside the period) and keeps
/// it with its audit event; its number of rows. The caller has checked who may upload.
pub async fn upload_statement(
    state: &AppState,
    principal: &crate::auth::Principal,
    member: &str,
    period: &str,
    body: &[u8],
) -> ApiResult<u64> {
    if state.members.get(member).is_none() {
        return Err(ApiError::not_found("member", member));
    }
    let month = Period::parse(period).map_err(|e| ApiError::invalid_field(e.to_string()))?;
    let invalid = |e: FocusError| {
        ApiError::new(
            ErrorCode::StatementInvalid,
            format!("the statement is not valid FOCUS: {e}"),
        )
        .with_extensions(serde_json::json!({ "row": e.row, "column": e.column }))
    };
    let reader = FocusReader::new(body).map_err(invalid)?.within(month);
    let mut rows = 0u64;
    for row in reader {
        row.map_err(invalid)?;
        rows += 1;
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::invalid_field("the statement is not UTF-8"))?;
    let by = format!("{}|{}", principal.issuer, principal.subject);
    let entry = principal.audit(
        "statement.upload",
        None,
        Some(member.to_owned()),
        "succeeded",
        serde_json::json!({ "period": period, "rows": rows }),
    );
    state
        .store
        .put_statement(member, period, &text, &by, &entry, state.clock.now_ms())
        .await?;
    Ok(rows)
}

/// Parses a non-negative decimal tolerance named `name`; `default` when absent.
pub fn tolerance_value(name: &str, value: Option<&str>, default: Decimal) -> ApiResult<Decimal> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse::<Decimal>()
            .ok()
            .filter(|d| !d.is_sign_negative())
            .ok_or_else(|| {
                ApiError::invalid_field(format!("`{name}`: `{v}` is not a non-negative decimal"))
            }),
    }
}

/// Runs and stores a reconciliation: the statement uploaded for the period, else the
/// member's own; the report as stored.
pub async fn create(state: &AppState, by: &str, request: &Request) -> ApiResult<serde_json::Value> {
    let member = &request.member;
    let period_text = request.period.to_string();
    let entry = state
        .members
        .get(member)
        .ok_or_else(|| ApiError::invalid_field(format!("`member`: `{member}` is not a member")))?;
    let (statement, source): (String, StatementSource) = crate::billing::member_statement(
        &state.store,
        entry.adapter.as_ref(),
        member,
        &period_text,
    )
    .await?
    .ok_or_else(|| {
        ApiError::new(
            ErrorCode::StatementMissing,
            "the member publishes no statement for this period; upload one first",
        )
    })?;
    let books = Books::from_registry(&state.members);
    let now = state.clock.now_ms();
    let Reconciled { outcome, usage } = reconcile_member(
        &state.store,
        &books,
        member,
        request.period,
        statement.as_bytes(),
        request.tolerance,
        now,
    )
    .await?;
    let invoices = crate::invoicing::three_way(
        &state.store,
        state.config.billing.rates.as_deref(),
        member,
        request.period,
        &usage.lines,
        now,
    )
    .await?;
    let id = format!("rec-{}", uuid::Uuid::now_v7().simple());
    let mut notes = Vec::new();
    let unpriced: usize = usage.totals.iter().map(|t| t.unpriced_lines).sum();
    if unpriced > 0 {
        notes.push(format!(
            "{unpriced} ledger lines have no price in the member's catalogue and are rated at zero"
        ));
    }
    let tolerance = request.tolerance;
    let report = serde_json::json!({
        "id": id,
        "period": period_text,
        "member": member,
        "status": outcome.status,
        "currency": outcome.currency,
        "statement_source": source.as_str(),
        "tolerance": { "absolute": tolerance.absolute.to_string(), "relative": tolerance.relative.to_string(), "clock_skew_seconds": tolerance.clock_skew_seconds },
        "ledger_rows": outcome.ledger_rows,
        "statement_rows": outcome.statement_rows,
        "totals": { "expected": outcome.totals.expected, "stated": outcome.totals.stated, "difference": outcome.totals.difference, "by_tenant": outcome.totals_by_tenant },
        "discrepancies": outcome.discrepancies,
        "unattributed": outcome.unattributed,
        "invoices": invoices,
        "notes": notes,
    });
    state
        .store
        .insert_reconciliation(&id, member, &period_text, &outcome.status, &report, by, now)
        .await?;
    Ok(report)
}
