//! FOCUS 1.2 CSV: the 21 mandatory columns the SPEC names, then ResourceId, ResourceName,
//! ResourceType, RegionId, SkuId, SubAccountId, ConsumedQuantity, ConsumedUnit,
//! ListUnitPrice and Tags (JSON with the broker's tenant and jurisdiction), then the
//! recommended ChargeFrequency, InvoiceId and ServiceSubcategory that the FinOps
//! Foundation's validator checks. Used for the broker's usage export and for members'
//! statements (which the sim writes with it too).
//!
//! Invariant: every value is what FOCUS allows for its column: units as FOCUS units
//! (`Hours`), decimals as plain decimals (never an exponent), one ServiceSubcategory per
//! ServiceName, and an InvoiceId on every row (each row belongs to the provisional invoice
//! of its member, tenant and billing period, see [`invoice_id`]).

use std::collections::BTreeMap;
use std::io::Write;

use crate::billing::{iso, Period, UsageLine};
use crate::ResourceType;

/// The columns, in order.
pub const COLUMNS: [&str; 34] = [
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "InvoiceIssuerName",
    "ServiceName",
    "ServiceCategory",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "RegionId",
    "SkuId",
    "SubAccountId",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ListUnitPrice",
    "Tags",
    "ChargeFrequency",
    "InvoiceId",
    "ServiceSubcategory",
];

/// A resource type's ServiceName, ServiceCategory and ServiceSubcategory (FOCUS 1.2's
/// allowed values; one subcategory per service name).
fn service(resource_type: ResourceType) -> (&'static str, &'static str, &'static str) {
    match resource_type {
        ResourceType::Instance => ("Virtual Machines", "Compute", "Virtual Machines"),
        ResourceType::Volume => ("Block Storage", "Storage", "Block Storage"),
        ResourceType::Bucket => ("Object Storage", "Storage", "Object Storage"),
    }
}

/// A text from a tenant or a partner as a spreadsheet will not run it: one that starts
/// like a formula (`=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'`
/// (OWASP's advice for CSV injection); any other text is unchanged.
pub fn spreadsheet_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{text}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The (provisional) invoice a row belongs to: one per member, tenant and billing period,
/// the same in the broker's export and in a member's statement.
pub fn invoice_id(member: &str, tenant: &str, period: Period) -> String {
    format!("{member}-{tenant}-{period}")
}

/// Writes `lines` as FOCUS CSV; `member_names` maps member ids to provider names.
pub fn write<W: Write>(
    out: W,
    period: Period,
    lines: &[UsageLine],
    member_names: &BTreeMap<String, String>,
) -> Result<(), csv::Error> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(COLUMNS)?;
    let (period_start, period_end) = (iso(period.start_ms()), iso(period.end_ms()));
    for line in lines {
        let cost = line.cost.to_string();
        let provider = member_names.get(line.member.as_str()).map_or_else(
            || line.member.to_string(),
            |n| spreadsheet_safe(n).into_owned(),
        );
        let (service_name, category, subcategory) = service(line.resource_type);
        let tags = serde_json::json!({ "alliance/tenant": line.tenant, "alliance/jurisdiction": line.jurisdiction, "alliance/member": line.member }).to_string();
        let record: [String; 34] = [
            cost.clone(),
            cost.clone(),
            cost.clone(),
            cost,
            line.tenant.to_string(),
            line.tenant.to_string(),
            line.currency.clone(),
            period_start.clone(),
            period_end.clone(),
            iso(line.charge_start_ms),
            iso(line.charge_end_ms),
            "Usage".into(),
            String::new(),
            format!("{} in {}", line.sku, line.jurisdiction),
            line.quantity.to_string(),
            line.unit.clone(),
            provider.clone(),
            provider.clone(),
            provider,
            service_name.into(),
            category.into(),
            line.resource_id.clone(),
            spreadsheet_safe(&line.resource_name).into_owned(),
            line.resource_type.as_str().to_owned(),
            line.jurisdiction.to_string(),
            line.sku.clone(),
            line.tenant.to_string(),
            line.consumed_hours.to_string(),
            "Hours".into(),
            line.unit_price.map(|p| p.to_string()).unwrap_or_default(),
            tags,
            "Usage-Based".into(),
            invoice_id(line.member.as_str(), line.tenant.as_str(), period),
            subcategory.into(),
        ];
        writer.write_record(&record)?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::{meter, PriceCatalogue, UsageSpan};

    #[test]
    fn one_row_per_resource_and_day_with_every_column() {
        let period = Period::parse("2026-11").expect("period");
        let span = UsageSpan {
            resource_id: "bkt-1".into(),
            resource_name: "logs, \"2026\"".into(),
            resource_type: ResourceType::Bucket,
            tenant: crate::TenantId::parse("acme").expect("tenant"),
            member: crate::MemberId::parse("numergy-fr").expect("member"),
            jurisdiction: crate::Jurisdiction::parse("FR").expect("jurisdiction"),
            sku: "bucket".into(),
            units: rust_decimal::Decimal::ONE,
            start_ms: period.start_ms() + 3_600_000,
            end_ms: Some(period.start_ms() + 3 * 86_400_000),
        };
        let lines = meter(&[span], period, &PriceCatalogue::default(), i64::MAX);
        let mut out = Vec::new();
        write(
            &mut out,
            period,
            &lines,
            &BTreeMap::from([("numergy-fr".to_owned(), "Numergy".to_owned())]),
        )
        .expect("write");
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let headers: Vec<String> = reader
            .headers()
            .expect("headers")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(headers, COLUMNS.to_vec());
        let rows: Vec<csv::StringRecord> =
            reader.records().collect::<Result<_, _>>().expect("rows");
        assert_eq!(rows.len(), 3);
        assert_eq!(&rows[0][22], "logs, \"2026\"");
        assert_eq!(&rows[0][14], "23");
        assert_eq!(&rows[0][16], "Numergy");
        assert!(rows[0][30].contains("\"alliance/tenant\":\"acme\""));
        assert_eq!(
            (&rows[0][31], &rows[0][32], &rows[0][33]),
            ("Usage-Based", "numergy-fr-acme-2026-11", "Object Storage")
        );
    }

    #[test]
    fn texts_that_look_like_formulas_are_neutralised() {
        for formula in ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx"] {
            assert_eq!(spreadsheet_safe(formula), format!("'{formula}"));
        }
        assert_eq!(spreadsheet_safe("web-1"), "web-1");
        assert_eq!(spreadsheet_safe(""), "");
    }
}
