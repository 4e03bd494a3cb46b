//! The billing pages: run a reconciliation and read its report as tables (discrepancies by
//! class, per-tenant totals, rows without a resource, the invoices' three-way check), with
//! the report to download as JSON or CSV; and upload a member's statement, its row and
//! column errors shown in place.

use std::collections::BTreeMap;

use alliance_core::billing::Period;
use alliance_core::reconcile::Tolerance;
use axum::extract::{Multipart, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use maud::{html, Markup};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use super::pages::layout;
use super::signin::check_csrf;
use super::{json_text as text, PageError, PageResult, Visitor};
use crate::auth::permissions::{Reconcile, UploadStatements};
use crate::auth::{Authorized, Role};
use crate::error::ApiError;
use crate::state::AppState;

fn this_month(state: &AppState) -> String {
    alliance_core::billing::iso(state.clock.now_ms())[..7].to_owned()
}

/// The forms: run a reconciliation, upload a statement; `notice` is the outcome of the
/// last upload (an error in place, or how many rows were kept).
fn books_page(state: &AppState, visitor: &Visitor, notice: Option<Markup>) -> Markup {
    let members: Vec<String> = state
        .members
        .all()
        .iter()
        .map(|e| e.config.id.get_ref().to_string())
        .collect();
    let month = this_month(state);
    let may_reconcile = Authorized::<Reconcile>::grant(visitor.principal.clone()).is_ok();
    let may_upload = visitor.principal.has(Role::Billing);
    let member_select = html! {
        label { "Member " select name="member" { @for m in &members { option value=(m) { (m) } } } }
        label { "Period " input type="text" name="period" value=(month) pattern="[0-9]{4}-[0-9]{2}" required; }
    };
    html! {
        @if may_reconcile {
            h2 { "Reconcile" }
            form method="post" action="/console/reconciliations" class="filters" {
                input type="hidden" name="csrf" value=(visitor.session.csrf);
                (member_select)
                button type="submit" { "Reconcile" }
            }
        }
        @if may_upload {
            h2 { "Upload a member's statement" }
            form method="post" action="/console/statements" enctype="multipart/form-data" class="filters" {
                input type="hidden" name="csrf" value=(visitor.session.csrf);
                (member_select)
                label { "FOCUS CSV " input type="file" name="statement" accept=".csv,text/csv" required; }
                button type="submit" { "Upload" }
            }
            @if let Some(n) = notice { (n) }
        }
    }
}

/// `GET /console/reconciliations`.
pub async fn books(State(state): State<AppState>, visitor: Visitor) -> PageResult {
    if Authorized::<Reconcile>::grant(visitor.principal.clone()).is_err() {
        Authorized::<UploadStatements>::grant(visitor.principal.clone())?;
    }
    let body = books_page(&state, &visitor, None);
    Ok(layout("Books", Some(&visitor), body).into_response())
}

/// The reconcile form.
#[derive(Debug, Deserialize)]
pub struct RunForm {
    csrf: String,
    member: String,
    period: String,
}

/// `POST /console/reconciliations`: the same reconciliation as `POST /v1/reconciliations`
/// with the default tolerance; then its report.
pub async fn run(
    State(state): State<AppState>,
    visitor: Visitor,
    Form(form): Form<RunForm>,
) -> PageResult {
    check_csrf(&visitor, &form.csrf)?;
    let granted = Authorized::<Reconcile>::grant(visitor.principal.clone())?;
    let request = crate::reconciliation::Request {
        period: Period::parse(&form.period)
            .map_err(|e| ApiError::invalid_field(format!("`period`: {e}")))?,
        tolerance: Tolerance {
            clock_skew_seconds: crate::reconciliation::default_clock_skew(&state, &form.member),
            ..Tolerance::default()
        },
        member: form.member,
    };
    let by = format!("{}|{}", granted.principal.issuer, granted.principal.subject);
    let report = crate::reconciliation::create(&state, &by, &request).await?;
    let id = report["id"].as_str().unwrap_or_default();
    Ok(Redirect::to(&format!("/console/reconciliations/{id}")).into_response())
}

async fn report_of(state: &AppState, visitor: &Visitor, id: &str) -> Result<Value, PageError> {
    Authorized::<Reconcile>::grant(visitor.principal.clone())?;
    state
        .store
        .reconciliation(id)
        .await?
        .ok_or_else(|| PageError(ApiError::not_found("reconciliation", id)))
}

/// `GET /console/reconciliations/{id}`: the report as tables.
pub async fn report(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    let report = report_of(&state, &visitor, &id).await?;
    let discrepancies = report["discrepancies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut by_class: BTreeMap<String, (usize, Decimal)> = BTreeMap::new();
    for d in &discrepancies {
        let entry = by_class.entry(text(&d["class"])).or_default();
        entry.0 += 1;
        let cost = |k: &str| text(&d[k]).parse::<Decimal>().unwrap_or_default();
        entry.1 += cost("stated_cost") - cost("expected_cost");
    }
    let totals = &report["totals"];
    let body = html! {
        dl class="facts" {
            dt { "Member" } dd { (text(&report["member"])) }
            dt { "Period" } dd { (text(&report["period"])) }
            dt { "Status" } dd class={ "status " (text(&report["status"])) } data-field="status" { (text(&report["status"])) }
            dt { "Currency" } dd { (text(&report["currency"])) }
            dt { "Statement" } dd data-field="source" { (text(&report["statement_source"])) }
            dt { "Rows" } dd { (text(&report["ledger_rows"])) " in the ledger, " (text(&report["statement_rows"])) " in the statement" }
            dt { "Totals" } dd { "expected " (text(&totals["expected"])) ", stated " (text(&totals["stated"])) ", difference " (text(&totals["difference"])) }
            dt { "Invoices" } dd data-field="three-way" { @if report["invoices"]["holds"] == true { "the three-way check holds" } @else { "the three-way check does not hold" } }
        }
        p { a class="button" href={ "/console/reconciliations/" (id) "/report.json" } download { "Download JSON" } " "
            a class="button" href={ "/console/reconciliations/" (id) "/report.csv" } download { "Download CSV" } }
        h2 { "Discrepancies by class" }
        table class="classes" {
            thead { tr { th { "Class" } th { "Rows" } th { "Stated minus expected" } } }
            tbody {
                @for (class, (n, diff)) in &by_class { tr data-class=(class) { td { (class) } td { (n) } td { (diff) } } }
                @if by_class.is_empty() { tr { td colspan="3" { "none: the statement agrees with the ledger" } } }
            }
        }
        @if !discrepancies.is_empty() {
            table class="discrepancies" {
                thead { tr { th { "Class" } th { "Resource" } th { "SKU" } th { "Charge period" } th { "Expected" } th { "Stated" } th { "Detail" } } }
                tbody { @for d in &discrepancies { tr { td { (text(&d["class"])) } td { (text(&d["resource_id"])) } td { (text(&d["sku"])) } td { (text(&d["charge_period_start"])) } td { (text(&d["expected_cost"])) } td { (text(&d["stated_cost"])) } td { (text(&d["detail"])) } } } }
            }
        }
        h2 { "Per tenant" }
        table class="tenants" {
            thead { tr { th { "Tenant" } th { "Expected" } th { "Stated" } th { "Difference" } } }
            tbody {
                @if let Some(by) = totals["by_tenant"].as_object() {
                    @for (tenant, t) in by { tr data-tenant=(tenant) { td { (tenant) } td { (text(&t["expected"])) } td { (text(&t["stated"])) } td { (text(&t["difference"])) } } }
                }
            }
        }
        @if let Some(rows) = report["unattributed"].as_object().filter(|o| !o.is_empty()) {
            h2 { "Rows without a resource" }
            table { thead { tr { th { "Category" } th { "Rows" } th { "Cost" } } }
                tbody { @for (category, t) in rows { tr { td { (category) } td { (text(&t["rows"])) } td { (text(&t["cost"])) } } } } }
        }
    };
    Ok(layout("Reconciliation", Some(&visitor), body).into_response())
}

/// `GET /console/reconciliations/{id}/report.json`.
pub async fn report_json(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    let report = report_of(&state, &visitor, &id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.json\""),
            ),
        ],
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )
        .into_response())
}

/// `GET /console/reconciliations/{id}/report.csv`: the discrepancies, one per row.
pub async fn report_csv(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> PageResult {
    let report = report_of(&state, &visitor, &id).await?;
    let columns = alliance_core::reconcile::DISCREPANCY_COLUMNS;
    let mut out = csv::Writer::from_writer(Vec::new());
    let write = |out: &mut csv::Writer<Vec<u8>>, record: Vec<String>| {
        out.write_record(record)
            .map_err(|e| PageError(ApiError::internal(e)))
    };
    write(&mut out, columns.iter().map(|c| (*c).to_owned()).collect())?;
    for d in report["discrepancies"].as_array().into_iter().flatten() {
        // Text a spreadsheet would run as a formula is neutralised, as in the export.
        write(
            &mut out,
            columns
                .iter()
                .map(|c| alliance_core::focus::spreadsheet_safe(&text(&d[*c])).into_owned())
                .collect(),
        )?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| PageError(ApiError::internal(e)))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.csv\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `POST /console/statements` (multipart): a statement for a member and period, checked
/// as the API checks it; a refusal is shown beside the form, naming row and column.
pub async fn upload(
    State(state): State<AppState>,
    visitor: Visitor,
    mut form: Multipart,
) -> PageResult {
    let granted = Authorized::<UploadStatements>::grant(visitor.principal.clone())?;
    let bad = |e: axum::extract::multipart::MultipartError| {
        PageError(ApiError::invalid_field(e.body_text()))
    };
    let (mut csrf, mut member, mut period, mut body) =
        (String::new(), String::new(), String::new(), Vec::new());
    while let Some(field) = form.next_field().await.map_err(bad)? {
        match field.name().unwrap_or("") {
            "csrf" => csrf = field.text().await.map_err(bad)?,
            "member" => member = field.text().await.map_err(bad)?,
            "period" => period = field.text().await.map_err(bad)?,
            "statement" => body = field.bytes().await.map_err(bad)?.to_vec(),
            _ => {}
        }
    }
    check_csrf(&visitor, &csrf)?;
    if !granted.principal.has(Role::Billing) {
        return Err(PageError(ApiError::not_found("member", &member)));
    }
    let (status, notice) = match crate::reconciliation::upload_statement(
        &state,
        &granted.principal,
        &member,
        &period,
        &body,
    )
    .await
    {
        Ok(rows) => (
            StatusCode::OK,
            html! { p class="notice" data-field="upload" { "Kept " (rows) " rows for " (member) ", " (period) "." } },
        ),
        Err(e) => {
            let where_ = e
                .extensions
                .as_ref()
                .map(|x| (text(&x["row"]), text(&x["column"])));
            (
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
                html! {
                    div class="error" data-field="upload-error" data-code=(e.code.as_str()) {
                        @if let Some((row, column)) = where_ { p { "Row " span data-field="row" { (row) } ", column " span data-field="column" { (column) } ":" } }
                        p { (e.detail) }
                    }
                },
            )
        }
    };
    let body = books_page(&state, &visitor, Some(notice));
    Ok((status, layout("Books", Some(&visitor), body)).into_response())
}
