//! Currencies and reference exchange rates.
//!
//! Owns [`Currency`] (an active ISO 4217 code and its minor unit) and [`ReferenceRates`],
//! read from the European Central Bank's `eurofxref` CSV: a `Date` column then one column
//! per currency, one row per day, each rate in units of the currency per euro (`N/A` when
//! not published). Both of the ECB's files are read: the history (`2026-11-27,1.0512,…`)
//! and the daily one (`27 November 2026, 1.0512, …`).
//!
//! **Invariant:** amounts are converted with exact decimals through the euro (`amount ×
//! rate(to) ÷ rate(from)`), on one rate date, then rounded half to even at the target
//! currency's minor unit; a currency without a rate on that date is an error naming it,
//! never a zero.

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::reconcile::is_currency;

/// An active ISO 4217 currency code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    /// The code, checked against the active ISO 4217 list.
    pub fn parse(code: &str) -> Result<Self, String> {
        if is_currency(code) {
            Ok(Self(code.to_owned()))
        } else {
            Err(format!("`{code}` is not an active ISO 4217 currency code"))
        }
    }

    /// The euro.
    pub fn eur() -> Self {
        Self("EUR".into())
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Decimal places of its minor unit (ISO 4217): 0 for the yen, 3 for the dinars, 2
    /// for most.
    pub fn minor_units(&self) -> u32 {
        match self.0.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }

    /// `amount` rounded half to even at the minor unit.
    pub fn round(&self, amount: Decimal) -> Decimal {
        amount.round_dp_with_strategy(self.minor_units(), RoundingStrategy::MidpointNearestEven)
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(code: String) -> Result<Self, String> {
        Self::parse(&code)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.0
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bad rates file: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}, line {line}: {message}")]
pub struct RatesError {
    /// The file.
    pub source_name: String,
    /// 1-based line (0: the file as a whole).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// Reference rates per day: units of each currency per euro.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferenceRates {
    source: String,
    /// `YYYY-MM-DD` → currency → rate.
    days: BTreeMap<String, BTreeMap<String, Decimal>>,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// `2026-11-27` or `27 November 2026` as `2026-11-27`.
fn date(text: &str) -> Option<String> {
    let text = text.trim();
    let canonical = |y: u32, m: u32, d: u32| {
        (1..=12).contains(&m) && (1..=31).contains(&d) && (1900..=9999).contains(&y)
    };
    let parts: Vec<&str> = text.split('-').collect();
    if let [y, m, d] = parts[..] {
        let (y, m, d) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
        return canonical(y, m, d).then(|| format!("{y:04}-{m:02}-{d:02}"));
    }
    let parts: Vec<&str> = text.split_whitespace().collect();
    if let [d, month, y] = parts[..] {
        let m = MONTHS.iter().position(|n| n.eq_ignore_ascii_case(month))? as u32 + 1;
        let (y, d) = (y.parse().ok()?, d.parse().ok()?);
        return canonical(y, m, d).then(|| format!("{y:04}-{m:02}-{d:02}"));
    }
    None
}

impl ReferenceRates {
    /// Reads an ECB `eurofxref` CSV; `source` names it in errors and reports.
    pub fn parse(text: &str, source: &str) -> Result<Self, RatesError> {
        let error = |line: u64, message: String| RatesError {
            source_name: source.to_owned(),
            line,
            message,
        };
        let text = text.trim_start_matches('\u{feff}');
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers = reader
            .headers()
            .map_err(|e| error(1, format!("cannot read the header: {e}")))?
            .clone();
        if headers.get(0) != Some("Date") {
            return Err(error(1, "the first column must be `Date`".into()));
        }
        let mut currencies = Vec::new();
        for name in headers.iter().skip(1) {
            if name.is_empty() {
                currencies.push(None);
                continue;
            }
            // The ECB's history also holds currencies since withdrawn (CYP, HRK…): any
            // three capital letters; a conversion checks its own currencies.
            if name.len() != 3 || !name.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(error(
                    1,
                    format!("`{name}` is not an ISO 4217 currency code"),
                ));
            }
            currencies.push(Some(name.to_owned()));
        }
        let mut days = BTreeMap::new();
        for (n, record) in reader.records().enumerate() {
            let line = n as u64 + 2;
            let record = record.map_err(|e| error(line, e.to_string()))?;
            if record.iter().all(str::is_empty) {
                continue;
            }
            let day = date(record.get(0).unwrap_or("")).ok_or_else(|| {
                error(
                    line,
                    format!("`{}` is not a date", record.get(0).unwrap_or("")),
                )
            })?;
            let mut rates = BTreeMap::new();
            for (value, currency) in record.iter().skip(1).zip(&currencies) {
                let Some(currency) = currency else { continue };
                if value.is_empty() || value == "N/A" {
                    continue;
                }
                let rate: Decimal = value
                    .parse()
                    .ok()
                    .filter(|r: &Decimal| *r > Decimal::ZERO)
                    .ok_or_else(|| {
                        error(
                            line,
                            format!("{currency}: `{value}` is not a positive decimal rate"),
                        )
                    })?;
                rates.insert(currency.clone(), rate);
            }
            if days.insert(day.clone(), rates).is_some() {
                return Err(error(line, format!("{day} is given twice")));
            }
        }
        if days.is_empty() {
            return Err(error(0, "no rates in the file".into()));
        }
        Ok(Self {
            source: source.to_owned(),
            days,
        })
    }

    /// The file the rates came from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The latest day on or before `cutoff` (`YYYY-MM-DD`) with rates, and those rates.
    pub fn on_or_before(
        &self,
        cutoff: &str,
    ) -> Result<(&str, &BTreeMap<String, Decimal>), RatesError> {
        self.days
            .range(..=cutoff.to_owned())
            .next_back()
            .map(|(d, r)| (d.as_str(), r))
            .ok_or_else(|| RatesError {
                source_name: self.source.clone(),
                line: 0,
                message: format!("no rates on or before {cutoff}"),
            })
    }

    /// Converts `amount` from `from` to `to` with the rates of `day` (from
    /// [`Self::on_or_before`]), rounded at `to`'s minor unit.
    pub fn convert(
        &self,
        amount: Decimal,
        from: &Currency,
        to: &Currency,
        day: &str,
    ) -> Result<Decimal, RatesError> {
        if from == to {
            return Ok(to.round(amount));
        }
        let rate = |c: &Currency| -> Result<Decimal, RatesError> {
            if c.as_str() == "EUR" {
                return Ok(Decimal::ONE);
            }
            self.days
                .get(day)
                .and_then(|r| r.get(c.as_str()))
                .copied()
                .ok_or_else(|| RatesError {
                    source_name: self.source.clone(),
                    line: 0,
                    message: format!("no {c} rate on {day}"),
                })
        };
        let (to_rate, from_rate) = (rate(to)?, rate(from)?);
        let converted = amount
            .checked_mul(to_rate)
            .and_then(|a| a.checked_div(from_rate))
            .ok_or_else(|| RatesError {
                source_name: self.source.clone(),
                line: 0,
                message: format!("{amount} {from} cannot be converted to {to}"),
            })?;
        Ok(to.round(converted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HISTORY: &str = "Date,USD,JPY,CHF,PLN,SEK,\n2026-11-27,1.0512,162.45,0.9412,4.2710,11.0215,\n2026-11-26,1.0500,N/A,0.9400,4.2700,11.0200,\n";

    fn d(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    #[test]
    fn both_ecb_files_are_read() {
        let rates = ReferenceRates::parse(HISTORY, "hist.csv").expect("history");
        let (day, r) = rates.on_or_before("2026-11-30").expect("day");
        assert_eq!((day, r["CHF"]), ("2026-11-27", d("0.9412")));
        let daily = "Date, USD, JPY, CHF, \n27 November 2026, 1.0512, 162.45, 0.9412, \n";
        let rates = ReferenceRates::parse(daily, "daily.csv").expect("daily");
        assert_eq!(
            rates.on_or_before("2026-11-27").expect("day").0,
            "2026-11-27"
        );
    }

    #[test]
    fn conversions_go_through_the_euro_and_round_at_the_minor_unit() {
        let rates = ReferenceRates::parse(HISTORY, "hist.csv").expect("rates");
        let (chf, eur, jpy) = (
            Currency::parse("CHF").expect("c"),
            Currency::eur(),
            Currency::parse("JPY").expect("c"),
        );
        // 10 CHF at 0.9412 CHF per euro: 10.624734… EUR.
        assert_eq!(
            rates.convert(d("10"), &chf, &eur, "2026-11-27").expect("c"),
            d("10.62")
        );
        assert_eq!(
            rates.convert(d("10"), &chf, &jpy, "2026-11-27").expect("c"),
            d("1726")
        );
        // Half to even.
        assert_eq!(eur.round(d("0.125")), d("0.12"));
        assert_eq!(eur.round(d("0.135")), d("0.14"));
        assert_eq!(Currency::parse("KWD").expect("c").minor_units(), 3);
    }

    #[test]
    fn a_missing_rate_is_an_error_naming_it() {
        let rates = ReferenceRates::parse(HISTORY, "hist.csv").expect("rates");
        let jpy = Currency::parse("JPY").expect("c");
        let e = rates
            .convert(d("1"), &jpy, &Currency::eur(), "2026-11-26")
            .expect_err("no JPY that day");
        assert!(e.to_string().contains("no JPY rate on 2026-11-26"), "{e}");
        let e = rates
            .convert(
                d("1"),
                &Currency::parse("NOK").expect("c"),
                &Currency::eur(),
                "2026-11-27",
            )
            .expect_err("no NOK");
        assert!(e.to_string().contains("NOK"), "{e}");
        assert!(rates.on_or_before("2020-01-01").is_err());
    }

    #[test]
    fn bad_files_name_the_line() {
        for (text, line, words) in [
            ("Day,USD\n2026-11-27,1\n", 1, "`Date`"),
            ("Date,xx1\n2026-11-27,1\n", 1, "xx1"),
            ("Date,USD\n2026-13-27,1\n", 2, "not a date"),
            ("Date,USD\n2026-11-27,-1\n", 2, "positive"),
            ("Date,USD\n2026-11-27,abc\n", 2, "positive"),
            ("Date,USD\n2026-11-27,1\n2026-11-27,1\n", 3, "twice"),
            ("Date,USD\n", 0, "no rates"),
        ] {
            let e = ReferenceRates::parse(text, "r.csv").expect_err(text);
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.to_string().contains(words), "{text}: {e}");
        }
        assert!(Currency::parse("XYZ").is_err());
        assert!(Currency::parse("eur").is_err());
    }
}
