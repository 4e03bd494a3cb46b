//! Tenant invoices: a tenant's metered usage of one month, every member's amounts in the
//! tenant's billing currency.
//!
//! Owns [`invoice`]: the usage lines of one tenant grouped by member, jurisdiction and
//! SKU, each with its amount in the member's own currency (exactly the ledger's, for the
//! three-way check) and in the tenant's currency (converted on one reference-rate date and
//! rounded at the currency's minor unit; see [`crate::rates`]).
//!
//! **Invariant:** for every member, the invoice lines' `member_amount` sum to the member's
//! ledger lines of the tenant to the last decimal; the tenant-currency `total` is the sum
//! of the rounded line amounts (and `subtotals_by_jurisdiction` of those of each
//! jurisdiction), so a reader can add the lines and find the total.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::billing::{Period, UsageLine};
use crate::rates::{Currency, RatesError, ReferenceRates};

/// One line of an invoice: a member's SKU in a jurisdiction over the month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// The member.
    pub member: String,
    /// Where the resources lived.
    pub jurisdiction: String,
    /// The SKU.
    pub sku: String,
    /// Priced quantity over the month.
    pub quantity: Decimal,
    /// Its unit (`Hours`, `GB-Hours`).
    pub unit: String,
    /// In the tenant's currency, rounded at its minor unit.
    pub amount: Decimal,
    /// The member's currency.
    pub member_currency: String,
    /// In the member's currency, exactly as metered.
    pub member_amount: Decimal,
}

/// The rates an invoice used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RatesUsed {
    /// The rates file (`[billing] reference_rates`), `null` when nothing was converted.
    pub source: Option<String>,
    /// The reference day (`YYYY-MM-DD`), `null` when nothing was converted.
    pub date: Option<String>,
}

/// A tenant's invoice for one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// The tenant.
    pub tenant: String,
    /// `YYYY-MM`.
    pub period: String,
    /// The tenant's billing currency.
    pub currency: String,
    /// By member, jurisdiction and SKU.
    pub lines: Vec<InvoiceLine>,
    /// The line amounts of each jurisdiction, summed.
    pub subtotals_by_jurisdiction: BTreeMap<String, Decimal>,
    /// The line amounts, summed.
    pub total: Decimal,
    /// The rates used.
    pub rates: RatesUsed,
}

/// Why an invoice cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceError {
    /// A member's currency is not ISO 4217.
    #[error("member {member} bills in `{currency}`, which is not an ISO 4217 currency")]
    Currency {
        /// The member.
        member: String,
        /// Its currency.
        currency: String,
    },
    /// A conversion needs rates that are not configured.
    #[error("converting {from} to {to} needs reference rates: set [billing] reference_rates")]
    NoRates {
        /// From.
        from: String,
        /// To.
        to: String,
    },
    /// The rates lack what a conversion needs.
    #[error(transparent)]
    Rates(#[from] RatesError),
}

/// The invoice of `tenant` for `period` in `currency`, from its usage `lines` (other
/// tenants' lines are ignored), converting on the latest reference day on or before
/// `cutoff` (`YYYY-MM-DD`: the period's last day, or today for the month in progress).
pub fn invoice(
    tenant: &str,
    period: Period,
    currency: &Currency,
    lines: &[UsageLine],
    rates: Option<&ReferenceRates>,
    cutoff: &str,
) -> Result<Invoice, InvoiceError> {
    // (member, jurisdiction, sku) → (quantity, unit, member currency, member amount)
    type Summed = (Decimal, String, String, Decimal);
    let mut grouped: BTreeMap<(String, String, String), Summed> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.tenant.as_str() == tenant) {
        let entry = grouped
            .entry((
                line.member.to_string(),
                line.jurisdiction.to_string(),
                line.sku.clone(),
            ))
            .or_insert_with(|| {
                (
                    Decimal::ZERO,
                    line.unit.clone(),
                    line.currency.clone(),
                    Decimal::ZERO,
                )
            });
        entry.0 += line.quantity;
        entry.3 += line.cost;
    }
    let mut day: Option<String> = None;
    let mut out = Vec::new();
    let mut subtotals: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut total = Decimal::ZERO;
    for ((member, jurisdiction, sku), (quantity, unit, member_currency, member_amount)) in grouped {
        let from = Currency::parse(&member_currency).map_err(|_| InvoiceError::Currency {
            member: member.clone(),
            currency: member_currency.clone(),
        })?;
        let amount = if &from == currency {
            currency.round(member_amount)
        } else {
            let rates = rates.ok_or_else(|| InvoiceError::NoRates {
                from: from.to_string(),
                to: currency.to_string(),
            })?;
            let on = match &day {
                Some(d) => d.clone(),
                None => {
                    let d = rates.on_or_before(cutoff)?.0.to_owned();
                    day = Some(d.clone());
                    d
                }
            };
            rates.convert(member_amount, &from, currency, &on)?
        };
        *subtotals.entry(jurisdiction.clone()).or_default() += amount;
        total += amount;
        out.push(InvoiceLine {
            member,
            jurisdiction,
            sku,
            quantity,
            unit,
            amount,
            member_currency,
            member_amount,
        });
    }
    Ok(Invoice {
        tenant: tenant.to_owned(),
        period: period.to_string(),
        currency: currency.to_string(),
        lines: out,
        subtotals_by_jurisdiction: subtotals,
        total,
        rates: RatesUsed {
            source: day.as_ref().and(rates).map(|r| r.source().to_owned()),
            date: day,
        },
    })
}

/// The three-way check of one member: the `member_amount`s of its lines on `invoices`
/// (every tenant's, in the member's currency) against its ledger `lines`, summed.
pub fn member_check(member: &str, invoices: &[Invoice], lines: &[UsageLine]) -> (Decimal, Decimal) {
    let invoiced = invoices
        .iter()
        .flat_map(|i| &i.lines)
        .filter(|l| l.member == member)
        .map(|l| l.member_amount)
        .sum();
    let ledger = lines
        .iter()
        .filter(|l| l.member.as_str() == member)
        .map(|l| l.cost)
        .sum();
    (invoiced, ledger)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::billing::{meter, Price, PriceCatalogue, UsageSpan};

    fn lines() -> Vec<UsageLine> {
        let period = Period::parse("2026-11").expect("period");
        let span = |id: &str, tenant: &str, member: &str, region: &str| UsageSpan {
            resource_id: id.into(),
            resource_name: id.into(),
            resource_type: crate::ResourceType::Instance,
            tenant: crate::TenantId::parse(tenant).expect("tenant"),
            member: crate::MemberId::parse(member).expect("member"),
            jurisdiction: crate::Jurisdiction::parse(region).expect("j"),
            sku: "instance.small".into(),
            units: Decimal::ONE,
            start_ms: period.start_ms(),
            end_ms: Some(period.start_ms() + 50 * 3_600_000 + 1_000),
        };
        let catalogue = |currency: &str, price: &str| {
            PriceCatalogue::new(&[Price {
                sku: "instance.small".into(),
                unit: "hour".into(),
                price: price.parse().expect("d"),
                currency: currency.into(),
            }])
            .expect("prices")
        };
        let mut out = meter(
            &[
                span("ins-1", "acme", "numergy-fr", "FR"),
                span("ins-2", "globex", "numergy-fr", "FR"),
            ],
            period,
            &catalogue("EUR", "0.0150"),
            i64::MAX,
        );
        out.extend(meter(
            &[span("ins-3", "acme", "alpine-ch", "CH")],
            period,
            &catalogue("CHF", "0.0173"),
            i64::MAX,
        ));
        out
    }

    const RATES: &str = "Date,CHF\n2026-11-30,0.9412\n2026-11-27,0.9400\n";

    #[test]
    fn a_tenant_in_eur_with_a_member_in_chf() {
        let rates = ReferenceRates::parse(RATES, "rates.csv").expect("rates");
        let period = Period::parse("2026-11").expect("p");
        let all = lines();
        let bill_of = |tenant: &str, currency: &Currency, cutoff: &str| {
            invoice(tenant, period, currency, &all, Some(&rates), cutoff).expect("invoice")
        };
        let bill = bill_of("acme", &Currency::eur(), "2026-11-30");
        assert_eq!(bill.rates.date.as_deref(), Some("2026-11-30"));
        assert_eq!(bill.rates.source.as_deref(), Some("rates.csv"));
        assert_eq!(bill.lines.len(), 2);
        let chf = bill
            .lines
            .iter()
            .find(|l| l.member == "alpine-ch")
            .expect("ch");
        assert_eq!(chf.member_currency, "CHF");
        // 50 h 1 s at 0.0173 CHF: 0.865005 CHF → 0.919045… EUR at 0.9412.
        assert_eq!(chf.member_amount, "0.865005".parse::<Decimal>().expect("d"));
        assert_eq!(chf.amount, "0.92".parse::<Decimal>().expect("d"));
        let eur = bill
            .lines
            .iter()
            .find(|l| l.member == "numergy-fr")
            .expect("fr");
        assert_eq!(eur.amount, "0.75".parse::<Decimal>().expect("d"));
        assert_eq!(bill.total, chf.amount + eur.amount);
        assert_eq!(bill.subtotals_by_jurisdiction["CH"], chf.amount);
        // The three-way check: every tenant's invoice lines against the member's ledger.
        let globex = bill_of("globex", &Currency::eur(), "2026-11-30");
        let (invoiced, ledger) = member_check("numergy-fr", &[bill.clone(), globex], &all);
        assert_eq!(invoiced, ledger);
        assert!(ledger > Decimal::ZERO);
        // In CHF, the rate date is the same and EUR lines convert the other way.
        let in_chf = bill_of("acme", &Currency::parse("CHF").expect("c"), "2026-11-29");
        assert_eq!(in_chf.rates.date.as_deref(), Some("2026-11-27"));
    }

    #[test]
    fn no_conversion_needs_no_rates_and_a_missing_rate_is_an_error() {
        let period = Period::parse("2026-11").expect("p");
        let all: Vec<UsageLine> = lines()
            .into_iter()
            .filter(|l| l.currency == "EUR")
            .collect();
        let bill =
            invoice("acme", period, &Currency::eur(), &all, None, "2026-11-30").expect("eur only");
        assert_eq!(
            bill.rates,
            RatesUsed {
                source: None,
                date: None
            }
        );
        let e = invoice(
            "acme",
            period,
            &Currency::eur(),
            &lines(),
            None,
            "2026-11-30",
        )
        .expect_err("no rates");
        assert!(e.to_string().contains("reference_rates"), "{e}");
        let rates =
            ReferenceRates::parse("Date,USD\n2026-11-30,1.05\n", "rates.csv").expect("rates");
        let e = invoice(
            "acme",
            period,
            &Currency::eur(),
            &lines(),
            Some(&rates),
            "2026-11-30",
        )
        .expect_err("no CHF");
        assert!(e.to_string().contains("no CHF rate on 2026-11-30"), "{e}");
    }
}
