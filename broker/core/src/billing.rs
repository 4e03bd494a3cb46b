//! Metering and rating: from usage spans (a resource live from one instant to another) to
//! priced lines per resource and charge period, in exact decimals.
//!
//! Charge periods are UTC days inside a billing period (a UTC month, start inclusive, end
//! exclusive). Quantities are hours (GB-hours for volumes), costs are quantity × unit
//! price in the member's currency. **Rounding rule:** each line's quantity and cost are
//! rounded half-to-even to 6 decimal places; totals are sums of the rounded lines; unit
//! prices are kept as given. A SKU without a price is metered and rated at zero, flagged.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::{Jurisdiction, MemberId, ResourceType, TenantId};

/// Decimal places of quantities and costs.
pub const SCALE: u32 = 6;
const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 86_400_000;

/// Rounds half-to-even to [`SCALE`] places.
pub fn round(value: Decimal) -> Decimal {
    value
        .round_dp_with_strategy(SCALE, RoundingStrategy::MidpointNearestEven)
        .normalize()
}

/// A billing period: one UTC month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    /// Year.
    pub year: i32,
    /// Month, 1 to 12.
    pub month: u32,
}

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = i32::try_from(yoe + era * 400 + i64::from(month <= 2)).unwrap_or(1970);
    (year, month, day)
}

/// Renders ms since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds).
pub fn iso(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let rest = ms.rem_euclid(MS_PER_DAY) / 1000;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (or with fractional seconds) into ms.
pub fn parse_iso(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || !text.ends_with('Z')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r).and_then(|s| s.parse::<u32>().ok());
    let (y, mo, d, h, mi, s) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(i32::try_from(y).ok()?, mo, d);
    Some(days * MS_PER_DAY + i64::from(h * 3600 + mi * 60 + s) * 1000)
}

/// Why a period does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a billing period (YYYY-MM, e.g. 2026-11)")]
pub struct PeriodError(pub String);

impl Period {
    /// Parses `YYYY-MM`.
    pub fn parse(text: &str) -> Result<Self, PeriodError> {
        let bad = || PeriodError(text.to_owned());
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&month) || !(1970..=9999).contains(&year) {
            return Err(bad());
        }
        Ok(Self { year, month })
    }

    /// First instant, ms.
    pub fn start_ms(&self) -> i64 {
        days_from_civil(self.year, self.month, 1) * MS_PER_DAY
    }

    /// First instant after, ms.
    pub fn end_ms(&self) -> i64 {
        let (y, m) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        days_from_civil(y, m, 1) * MS_PER_DAY
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// One entry of a price catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// `instance.<size>`, `volume.gb`, `bucket`.
    pub sku: String,
    /// `hour` (or `gb-hour` for volumes).
    pub unit: String,
    /// Price per unit, exact (a decimal string).
    pub price: Decimal,
    /// ISO 4217 code.
    pub currency: String,
}

/// A member's prices, by SKU.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceCatalogue {
    prices: BTreeMap<String, Price>,
}

impl PriceCatalogue {
    /// A catalogue; refuses mixed currencies and duplicate SKUs.
    pub fn new(prices: &[Price]) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        let mut currency: Option<&str> = None;
        for p in prices {
            if p.currency.len() != 3 || !p.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!("`{}` is not an ISO 4217 currency code", p.currency));
            }
            if currency.is_some_and(|c| c != p.currency) {
                return Err("a member's prices must all be in one currency".into());
            }
            currency = Some(&p.currency);
            if p.price.is_sign_negative() {
                return Err(format!("price of `{}` is negative", p.sku));
            }
            if out.insert(p.sku.clone(), p.clone()).is_some() {
                return Err(format!("sku `{}` is priced twice", p.sku));
            }
        }
        Ok(Self { prices: out })
    }

    /// The price of a SKU.
    pub fn get(&self, sku: &str) -> Option<&Price> {
        self.prices.get(sku)
    }

    /// The catalogue's currency, `EUR` when empty.
    pub fn currency(&self) -> &str {
        self.prices
            .values()
            .next()
            .map_or("EUR", |p| p.currency.as_str())
    }
}

pub use crate::lifecycle::sku_of;

/// A resource live over a span of time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageSpan {
    /// Broker resource id.
    pub resource_id: String,
    /// Tenant's name for it.
    pub resource_name: String,
    /// `instance`, `volume`, `bucket`.
    pub resource_type: ResourceType,
    /// Owner.
    pub tenant: TenantId,
    /// Member.
    pub member: MemberId,
    /// Jurisdiction.
    pub jurisdiction: Jurisdiction,
    /// SKU.
    pub sku: String,
    /// Units per hour (1, or the GB of a volume).
    pub units: Decimal,
    /// Became live, ms.
    pub start_ms: i64,
    /// Stopped, ms; `None` while live.
    pub end_ms: Option<i64>,
}

/// A metered and rated line: one resource in one charge period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLine {
    /// The span it comes from.
    pub resource_id: String,
    /// Name.
    pub resource_name: String,
    /// Kind.
    pub resource_type: ResourceType,
    /// Owner.
    pub tenant: TenantId,
    /// Member.
    pub member: MemberId,
    /// Jurisdiction.
    pub jurisdiction: Jurisdiction,
    /// SKU.
    pub sku: String,
    /// Charge period start, ms.
    pub charge_start_ms: i64,
    /// Charge period end, ms.
    pub charge_end_ms: i64,
    /// Hours live in the charge period.
    pub consumed_hours: Decimal,
    /// Priced quantity (hours × units).
    pub quantity: Decimal,
    /// `Hours` or `GB-Hours`.
    pub unit: String,
    /// Unit price, when priced.
    pub unit_price: Option<Decimal>,
    /// Cost (zero when unpriced).
    pub cost: Decimal,
    /// Currency.
    pub currency: String,
}

/// Splits spans into daily lines inside `period` and rates them; spans still open are
/// metered up to `now_ms` (usage so far, never a forecast).
pub fn meter(
    spans: &[UsageSpan],
    period: Period,
    prices: &PriceCatalogue,
    now_ms: i64,
) -> Vec<UsageLine> {
    let (start, end) = (period.start_ms(), period.end_ms());
    let mut lines = Vec::new();
    // Whole seconds: a span runs from the second it started to the second it ended (each
    // truncated), so two meters that see the same times write the same rows.
    let second = |ms: i64| ms.div_euclid(1000) * 1000;
    for span in spans {
        let from = second(span.start_ms).max(start);
        let to = second(span.end_ms.unwrap_or(now_ms)).min(end);
        if to <= from {
            continue;
        }
        let mut day = from.div_euclid(MS_PER_DAY) * MS_PER_DAY;
        while day < to {
            let next = day + MS_PER_DAY;
            let live = to.min(next) - from.max(day);
            if live > 0 {
                let hours = round(Decimal::from(live) / Decimal::from(MS_PER_HOUR));
                let quantity = round(hours * span.units);
                let price = prices.get(&span.sku);
                lines.push(UsageLine {
                    resource_id: span.resource_id.clone(),
                    resource_name: span.resource_name.clone(),
                    resource_type: span.resource_type,
                    tenant: span.tenant.clone(),
                    member: span.member.clone(),
                    jurisdiction: span.jurisdiction,
                    sku: span.sku.clone(),
                    charge_start_ms: day,
                    charge_end_ms: next,
                    consumed_hours: hours,
                    quantity,
                    unit: if span.resource_type == ResourceType::Volume {
                        "GB-Hours".into()
                    } else {
                        "Hours".into()
                    },
                    unit_price: price.map(|p| p.price),
                    cost: price.map_or(Decimal::ZERO, |p| round(quantity * p.price)),
                    currency: prices.currency().to_owned(),
                });
            }
            day = next;
        }
    }
    lines.sort_by(|a, b| {
        (&a.resource_id, a.charge_start_ms).cmp(&(&b.resource_id, b.charge_start_ms))
    });
    lines
}

/// A metered line as the reconciliation join reads it: the same values the FOCUS writer
/// would put in its row, without writing and parsing them back.
impl From<&UsageLine> for crate::reconcile::FocusRow {
    fn from(line: &UsageLine) -> Self {
        use crate::reconcile::Text;
        Self {
            resource_id: Text::from(line.resource_id.as_str()),
            sku: Text::from(line.sku.as_str()),
            charge_start: line.charge_start_ms,
            region: Text::from(line.jurisdiction.as_str()),
            currency: Text::from(line.currency.as_str()),
            cost: line.cost,
            quantity: line.quantity,
            tenant: Text::from(line.tenant.as_str()),
            consumed: Some(line.consumed_hours),
            category: Text::from("Usage"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    #[test]
    fn periods_and_dates() {
        let p = Period::parse("2026-11").expect("period");
        assert_eq!(iso(p.start_ms()), "2026-11-01T00:00:00Z");
        assert_eq!(iso(p.end_ms()), "2026-12-01T00:00:00Z");
        assert_eq!(
            iso(Period::parse("2026-12").expect("p").end_ms()),
            "2027-01-01T00:00:00Z"
        );
        assert_eq!(
            iso(Period::parse("2024-02").expect("p").end_ms() - 1000),
            "2024-02-29T23:59:59Z"
        );
        for bad in ["2026-13", "2026-1", "26-11", "2026/11", "", "2026-00"] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_iso("2026-11-03T04:05:06Z"),
            Some(p.start_ms() + 2 * MS_PER_DAY + (4 * 3600 + 5 * 60 + 6) * 1000)
        );
        assert_eq!(parse_iso("2026-11-03 04:05:06"), None);
    }

    #[test]
    fn spans_split_at_day_and_period_boundaries_and_rate_exactly() {
        let p = Period::parse("2026-11").expect("period");
        let prices = PriceCatalogue::new(&[Price {
            sku: "instance.small".into(),
            unit: "hour".into(),
            price: d("0.012"),
            currency: "EUR".into(),
        }])
        .expect("prices");
        let span = UsageSpan {
            resource_id: "ins-1".into(),
            resource_name: "web".into(),
            resource_type: ResourceType::Instance,
            tenant: TenantId::parse("acme").expect("tenant"),
            member: MemberId::parse("m").expect("member"),
            jurisdiction: Jurisdiction::parse("FR").expect("jurisdiction"),
            sku: "instance.small".into(),
            units: Decimal::ONE,
            // From 30 Oct 12:00 to 2 Nov 06:00: October is outside the period.
            start_ms: p.start_ms() - 36 * MS_PER_HOUR,
            end_ms: Some(p.start_ms() + 30 * MS_PER_HOUR),
        };
        let lines = meter(&[span], p, &prices, i64::MAX);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].consumed_hours, d("24"));
        assert_eq!(lines[0].cost, d("0.288"));
        assert_eq!(lines[1].consumed_hours, d("6"));
        assert_eq!(lines[1].cost, d("0.072"));
        assert_eq!(iso(lines[1].charge_start_ms), "2026-11-02T00:00:00Z");
    }

    #[test]
    fn a_typed_line_is_the_row_its_focus_rendering_reads_back_as() {
        let p = Period::parse("2026-11").expect("period");
        let prices = PriceCatalogue::new(&[Price {
            sku: "instance.small".into(),
            unit: "hour".into(),
            price: d("0.0123456789"),
            currency: "EUR".into(),
        }])
        .expect("prices");
        let span = UsageSpan {
            resource_id: "ins-1".into(),
            resource_name: "web, \"quoted\"".into(),
            resource_type: ResourceType::Instance,
            tenant: TenantId::parse("acme").expect("tenant"),
            member: MemberId::parse("m").expect("member"),
            jurisdiction: Jurisdiction::parse("FR").expect("jurisdiction"),
            sku: "instance.small".into(),
            units: Decimal::ONE,
            start_ms: p.start_ms() + 1_234_567,
            end_ms: Some(p.start_ms() + 50 * MS_PER_HOUR + 7),
        };
        let lines = meter(&[span], p, &prices, i64::MAX);
        let mut csv = Vec::new();
        let names = std::collections::BTreeMap::from([("m".to_owned(), "Member".to_owned())]);
        crate::focus::write(&mut csv, p, &lines, &names).expect("focus");
        let read: Vec<crate::reconcile::FocusRow> =
            crate::reconcile::FocusReader::new(csv.as_slice())
                .expect("header")
                .collect::<Result<_, _>>()
                .expect("rows");
        let typed: Vec<crate::reconcile::FocusRow> =
            lines.iter().map(crate::reconcile::FocusRow::from).collect();
        assert_eq!(read.len(), typed.len());
        for (r, t) in read.iter().zip(&typed) {
            assert_eq!(
                (
                    &r.resource_id,
                    &r.sku,
                    r.charge_start,
                    &r.region,
                    &r.currency,
                    r.cost,
                    r.quantity,
                    &r.tenant
                ),
                (
                    &t.resource_id,
                    &t.sku,
                    t.charge_start,
                    &t.region,
                    &t.currency,
                    t.cost,
                    t.quantity,
                    &t.tenant
                )
            );
        }
    }

    #[test]
    fn unpriced_skus_rate_at_zero_and_mixed_currencies_are_refused() {
        let p = Period::parse("2026-11").expect("period");
        let span = UsageSpan {
            resource_id: "vol-1".into(),
            resource_name: "v".into(),
            resource_type: ResourceType::Volume,
            tenant: TenantId::parse("acme").expect("tenant"),
            member: MemberId::parse("m").expect("member"),
            jurisdiction: Jurisdiction::parse("FR").expect("jurisdiction"),
            sku: "volume.gb".into(),
            units: d("20"),
            start_ms: p.start_ms(),
            end_ms: Some(p.start_ms() + 90 * 60 * 1000),
        };
        let lines = meter(&[span], p, &PriceCatalogue::default(), i64::MAX);
        assert_eq!(lines[0].quantity, d("30"));
        assert_eq!(lines[0].unit, "GB-Hours");
        assert_eq!(lines[0].cost, Decimal::ZERO);
        assert_eq!(lines[0].unit_price, None);
        let mixed = [
            Price {
                sku: "a".into(),
                unit: "hour".into(),
                price: d("1"),
                currency: "EUR".into(),
            },
            Price {
                sku: "b".into(),
                unit: "hour".into(),
                price: d("1"),
                currency: "CHF".into(),
            },
        ];
        assert!(PriceCatalogue::new(&mixed).is_err());
    }

    #[test]
    fn rounding_is_half_to_even_at_six_places() {
        assert_eq!(round(d("0.0000005")), d("0"));
        assert_eq!(round(d("0.0000015")), d("0.000002"));
        assert_eq!(round(d("1.2345675")), d("1.234568"));
    }
}
