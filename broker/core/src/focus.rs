//! FOCUS 1.2 CSV: the 21 mandatory columns the SPEC names, then ResourceId, ResourceName,
//! ResourceType, RegionId, SkuId, SubAccountId, ConsumedQuantity, ConsumedUnit,
//! ListUnitPrice and Tags (JSON with the broker's tenant and jurisdiction). Used for the
//! broker's usage export and for members' statements.

use std::collections::BTreeMap;
use std::io::Write;

use crate::billing::{iso, Period, UsageLine};
use crate::ResourceType;

/// The columns, in order.
pub const COLUMNS: [&str; 31] = [
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
];

fn service(resource_type: ResourceType) -> (&'static str, &'static str) {
    match resource_type {
        ResourceType::Instance => ("Virtual Machines", "Compute"),
        ResourceType::Volume => ("Block Storage", "Storage"),
        ResourceType::Bucket => ("Object Storage", "Storage"),
    }
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
        let provider = member_names
            .get(line.member.as_str())
            .cloned()
            .unwrap_or_else(|| line.member.to_string());
        let (service_name, category) = service(line.resource_type);
        let tags = serde_json::json!({ "alliance/tenant": line.tenant, "alliance/jurisdiction": line.jurisdiction, "alliance/member": line.member }).to_string();
        let record: [String; 31] = [
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
            line.resource_name.clone(),
            line.resource_type.as_str().to_owned(),
            line.jurisdiction.to_string(),
            line.sku.clone(),
            line.tenant.to_string(),
            line.consumed_hours.to_string(),
            "Hours".into(),
            line.unit_price.map(|p| p.to_string()).unwrap_or_default(),
            tags,
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
    }
}
