//! Reading FOCUS files and reconciling a member's statement with the broker's ledger.
//!
//! Rows match on (resource, SKU, charge period start); a statement may name a resource by
//! the broker's id or by the member's own id (the `aliases` map). Classes of discrepancy:
//! `missing_at_member` (in the ledger only), `unexpected_at_member` (in the statement
//! only), `amount_mismatch` and `quantity_mismatch` (beyond the tolerance: a difference is
//! tolerated when `|stated - expected| <= max(absolute, relative * |expected|)`),
//! `out_of_jurisdiction` (billed in another region than the ledger, or outside the
//! tenant's allowed jurisdictions), `currency_mismatch`. The report is deterministic: the
//! same inputs give the same report, discrepancies sorted by key.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::billing::parse_iso;

/// Active ISO 4217 currency codes.
const ISO_4217: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL";

/// Whether `code` is an active ISO 4217 currency.
pub fn is_currency(code: &str) -> bool {
    code.len() == 3 && ISO_4217.split(' ').any(|c| c == code)
}

/// A bad FOCUS file: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("row {row}, column {column}: {message}")]
pub struct FocusError {
    /// 1-based data row (0 for the header or the file as a whole).
    pub row: u64,
    /// The column concerned.
    pub column: String,
    /// What is wrong.
    pub message: String,
}

/// The columns reconciliation reads.
pub const REQUIRED: [&str; 9] = [
    "BilledCost",
    "BillingCurrency",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "PricingQuantity",
    "ResourceId",
    "SkuId",
    "RegionId",
    "SubAccountId",
];

/// Largest field accepted.
const MAX_FIELD: usize = 64 * 1024;

/// One FOCUS row, as reconciliation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FocusRow {
    /// Resource.
    pub resource_id: Text,
    /// SKU.
    pub sku: Text,
    /// Charge period start, ms.
    pub charge_start: i64,
    /// Region (jurisdiction).
    pub region: Text,
    /// Currency.
    pub currency: Text,
    /// Billed cost.
    pub cost: Decimal,
    /// Pricing quantity.
    pub quantity: Decimal,
    /// Tenant (SubAccountId).
    pub tenant: Text,
}

/// Shared text: rows of one file repeat their resource, SKU, region, currency and tenant,
/// so each value is allocated once per run of equal values, not once per row.
pub type Text = std::sync::Arc<str>;

/// Returns the cached value when `value` equals it, else a new one (and caches it).
fn intern(slot: &mut Option<Text>, value: &str) -> Text {
    match slot {
        Some(last) if **last == *value => last.clone(),
        _ => {
            let text: Text = Text::from(value);
            *slot = Some(text.clone());
            text
        }
    }
}

/// Streams the rows of a FOCUS CSV, checking the header, each value, and that one file
/// holds one currency.
pub struct FocusReader<R: Read> {
    reader: csv::Reader<R>,
    /// Reused for every row: one allocation for the whole file.
    record: csv::StringRecord,
    index: BTreeMap<&'static str, usize>,
    row: u64,
    currency: Option<Text>,
    /// The last resource id, SKU, region and tenant, shared by the next equal value.
    last: [Option<Text>; 4],
}

impl<R: Read> FocusReader<R> {
    /// Reads the header.
    pub fn new(input: R) -> Result<Self, FocusError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(input);
        let headers = reader.headers().map_err(|e| csv_error(0, &e))?.clone();
        let mut index = BTreeMap::new();
        for name in REQUIRED {
            let position = headers
                .iter()
                .position(|h| h.trim_start_matches('\u{feff}') == name)
                .ok_or_else(|| FocusError {
                    row: 0,
                    column: name.to_owned(),
                    message: "required column is missing from the header".into(),
                })?;
            index.insert(name, position);
        }
        Ok(Self {
            reader,
            record: csv::StringRecord::new(),
            index,
            row: 0,
            currency: None,
            last: Default::default(),
        })
    }

    fn parse(&mut self, record: &csv::StringRecord) -> Result<FocusRow, FocusError> {
        let row = self.row;
        let field = |name: &str| -> Result<&str, FocusError> {
            let value = self
                .index
                .get(name)
                .and_then(|i| record.get(*i))
                .unwrap_or("");
            if value.len() > MAX_FIELD {
                return Err(FocusError {
                    row,
                    column: name.to_owned(),
                    message: format!("value longer than {MAX_FIELD} bytes"),
                });
            }
            Ok(value)
        };
        let decimal = |name: &str| -> Result<Decimal, FocusError> {
            let raw = field(name)?;
            raw.trim().parse::<Decimal>().map_err(|_| FocusError {
                row,
                column: name.to_owned(),
                message: format!("`{}` is not a decimal number", truncate(raw)),
            })
        };
        let required = |name: &str| -> Result<&str, FocusError> {
            let raw = field(name)?;
            if raw.trim().is_empty() {
                Err(FocusError {
                    row,
                    column: name.to_owned(),
                    message: "must not be empty".into(),
                })
            } else {
                Ok(raw)
            }
        };
        let currency = field("BillingCurrency")?;
        // One currency per file: only a row that differs from the first is looked up.
        let currency = match &self.currency {
            Some(first) if **first == *currency => first.clone(),
            _ if !is_currency(currency) => {
                return Err(FocusError {
                    row,
                    column: "BillingCurrency".into(),
                    message: format!("`{}` is not an ISO 4217 currency", truncate(currency)),
                });
            }
            Some(first) => {
                return Err(FocusError {
                    row,
                    column: "BillingCurrency".into(),
                    message: format!(
                        "{currency} in a file billed in {first}: one file, one currency"
                    ),
                });
            }
            None => {
                let text = Text::from(currency);
                self.currency = Some(text.clone());
                text
            }
        };
        let start = field("ChargePeriodStart")?;
        let charge_start = parse_iso(start).ok_or_else(|| FocusError {
            row,
            column: "ChargePeriodStart".into(),
            message: format!(
                "`{}` is not a UTC time (YYYY-MM-DDTHH:MM:SSZ)",
                truncate(start)
            ),
        })?;
        let end = field("ChargePeriodEnd")?;
        let charge_end = parse_iso(end).ok_or_else(|| FocusError {
            row,
            column: "ChargePeriodEnd".into(),
            message: format!("`{}` is not a UTC time", truncate(end)),
        })?;
        if charge_end <= charge_start {
            return Err(FocusError {
                row,
                column: "ChargePeriodEnd".into(),
                message: "ends before it starts".into(),
            });
        }
        let (resource_id, sku) = (required("ResourceId")?, required("SkuId")?);
        let (region, tenant) = (field("RegionId")?, field("SubAccountId")?);
        let (cost, quantity) = (decimal("BilledCost")?, decimal("PricingQuantity")?);
        let [last_resource, last_sku, last_region, last_tenant] = &mut self.last;
        Ok(FocusRow {
            resource_id: intern(last_resource, resource_id),
            sku: intern(last_sku, sku),
            charge_start,
            region: intern(last_region, region),
            currency,
            cost,
            quantity,
            tenant: intern(last_tenant, tenant),
        })
    }
}

fn truncate(value: &str) -> String {
    value.chars().take(40).collect()
}

fn csv_error(row: u64, e: &csv::Error) -> FocusError {
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "the file is not UTF-8".to_owned(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        _ => e.to_string(),
    };
    FocusError {
        row,
        column: "-".into(),
        message,
    }
}

impl<R: Read> Iterator for FocusReader<R> {
    type Item = Result<FocusRow, FocusError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut record = std::mem::take(&mut self.record);
        let read = self.reader.read_record(&mut record);
        self.row += 1;
        let result = match read {
            Ok(false) => None,
            Ok(true) => Some(self.parse(&record)),
            Err(e) => Some(Err(csv_error(self.row, &e))),
        };
        self.record = record;
        result
    }
}

/// How much difference is tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tolerance {
    /// In currency units (costs) or units (quantities).
    pub absolute: Decimal,
    /// As a fraction of the expected value.
    pub relative: Decimal,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            absolute: Decimal::new(1, 6),
            relative: Decimal::ZERO,
        }
    }
}

impl Tolerance {
    fn allows(&self, expected: Decimal, stated: Decimal) -> bool {
        (stated - expected).abs() <= self.absolute.max(self.relative * expected.abs())
    }
}

/// One discrepancy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Discrepancy {
    /// The class (see the module documentation).
    pub class: String,
    /// The broker's resource id.
    pub resource_id: String,
    /// SKU.
    pub sku: String,
    /// Charge period start (RFC 3339).
    pub charge_period_start: String,
    /// The ledger's cost.
    pub expected_cost: Option<Decimal>,
    /// The statement's cost.
    pub stated_cost: Option<Decimal>,
    /// The ledger's quantity.
    pub expected_quantity: Option<Decimal>,
    /// The statement's quantity.
    pub stated_quantity: Option<Decimal>,
    /// A human explanation.
    pub detail: String,
}

/// Expected and stated totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    /// Ledger.
    pub expected: Decimal,
    /// Statement.
    pub stated: Decimal,
    /// Stated minus expected.
    pub difference: Decimal,
}

/// The reconciliation of one statement with one ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// `clean` or `discrepancies`.
    pub status: String,
    /// The ledger's currency.
    pub currency: Option<String>,
    /// Rows read.
    pub ledger_rows: u64,
    /// Rows read.
    pub statement_rows: u64,
    /// Totals, overall and per tenant.
    pub totals: Total,
    /// Per tenant.
    pub totals_by_tenant: BTreeMap<String, Total>,
    /// Sorted by class and key.
    pub discrepancies: Vec<Discrepancy>,
}

type Key = (Text, Text, i64);

#[derive(Debug, Clone)]
struct Compact {
    region: Text,
    currency: Text,
    cost: Decimal,
    quantity: Decimal,
    tenant: Text,
}

/// Classifies matched, missing and unexpected rows and keeps the totals; shared by the
/// hash join and the merge join so that both give the same report.
struct Classifier<'a> {
    tolerance: Tolerance,
    allowed: &'a HashMap<String, BTreeSet<String>>,
    discrepancies: Vec<Discrepancy>,
    totals: Total,
    by_tenant: BTreeMap<Text, Total>,
    currency: Option<Text>,
    ledger_rows: u64,
    statement_rows: u64,
}

impl<'a> Classifier<'a> {
    fn new(tolerance: Tolerance, allowed: &'a HashMap<String, BTreeSet<String>>) -> Self {
        Self {
            tolerance,
            allowed,
            discrepancies: Vec::new(),
            totals: Total::default(),
            by_tenant: BTreeMap::new(),
            currency: None,
            ledger_rows: 0,
            statement_rows: 0,
        }
    }

    fn push(
        &mut self,
        class: &str,
        key: &Key,
        e: Option<&FocusRow>,
        s: Option<&Compact>,
        detail: String,
    ) {
        self.discrepancies.push(Discrepancy {
            class: class.to_owned(),
            resource_id: key.0.to_string(),
            sku: key.1.to_string(),
            charge_period_start: crate::billing::iso(key.2),
            expected_cost: e.map(|e| e.cost),
            stated_cost: s.map(|s| s.cost),
            expected_quantity: e.map(|e| e.quantity),
            stated_quantity: s.map(|s| s.quantity),
            detail,
        });
    }

    fn ledger_row(&mut self, row: &FocusRow) {
        self.ledger_rows += 1;
        self.currency.get_or_insert_with(|| row.currency.clone());
        self.totals.expected += row.cost;
        self.by_tenant
            .entry(row.tenant.clone())
            .or_default()
            .expected += row.cost;
    }

    fn matched(&mut self, key: &Key, row: &FocusRow, s: &Compact) {
        self.totals.stated += s.cost;
        self.by_tenant.entry(row.tenant.clone()).or_default().stated += s.cost;
        if s.currency != row.currency {
            self.push(
                "currency_mismatch",
                key,
                Some(row),
                Some(s),
                format!("billed in {}, metered in {}", s.currency, row.currency),
            );
            return;
        }
        if !s.region.is_empty() && s.region != row.region {
            self.push(
                "out_of_jurisdiction",
                key,
                Some(row),
                Some(s),
                format!("billed in {}, placed in {}", s.region, row.region),
            );
        }
        if !self.tolerance.allows(row.quantity, s.quantity) {
            self.push(
                "quantity_mismatch",
                key,
                Some(row),
                Some(s),
                format!("quantity {} stated, {} metered", s.quantity, row.quantity),
            );
        }
        if !self.tolerance.allows(row.cost, s.cost) {
            self.push(
                "amount_mismatch",
                key,
                Some(row),
                Some(s),
                format!("cost {} stated, {} expected", s.cost, row.cost),
            );
        }
    }

    fn missing(&mut self, key: &Key, row: &FocusRow) {
        self.push(
            "missing_at_member",
            key,
            Some(row),
            None,
            "in the broker's ledger, not in the member's statement".into(),
        );
    }

    fn unexpected(&mut self, key: &Key, s: &Compact) {
        self.totals.stated += s.cost;
        self.by_tenant.entry(s.tenant.clone()).or_default().stated += s.cost;
        self.push(
            "unexpected_at_member",
            key,
            None,
            Some(s),
            "in the member's statement, unknown to the broker's ledger".into(),
        );
        if self
            .allowed
            .get(&*s.tenant)
            .is_some_and(|set| !set.contains(&*s.region))
        {
            self.push(
                "out_of_jurisdiction",
                key,
                None,
                Some(s),
                format!(
                    "billed in {}, outside the tenant's allowed jurisdictions",
                    s.region
                ),
            );
        }
    }

    fn finish(mut self) -> Outcome {
        self.totals.difference = self.totals.stated - self.totals.expected;
        for total in self.by_tenant.values_mut() {
            total.difference = total.stated - total.expected;
        }
        self.discrepancies.sort();
        Outcome {
            status: if self.discrepancies.is_empty() {
                "clean".into()
            } else {
                "discrepancies".into()
            },
            currency: self.currency.map(|c| c.to_string()),
            ledger_rows: self.ledger_rows,
            statement_rows: self.statement_rows,
            totals: self.totals,
            totals_by_tenant: self
                .by_tenant
                .into_iter()
                .map(|(tenant, total)| (tenant.to_string(), total))
                .collect(),
            discrepancies: self.discrepancies,
        }
    }
}

fn compact(row: FocusRow) -> Compact {
    Compact {
        region: row.region,
        currency: row.currency,
        cost: row.cost,
        quantity: row.quantity,
        tenant: row.tenant,
    }
}

/// Reconciles; `aliases` maps member ids to broker ids; `allowed` maps tenants to the
/// jurisdictions they allow (when known). Both files are held in memory (a hash join, for
/// unsorted files and member ids); see [`reconcile_sorted`] for bounded memory.
pub fn reconcile(
    ledger: impl Iterator<Item = Result<FocusRow, FocusError>>,
    statement: impl Iterator<Item = Result<FocusRow, FocusError>>,
    tolerance: Tolerance,
    aliases: &HashMap<String, String>,
    allowed: &HashMap<String, BTreeSet<String>>,
) -> Result<Outcome, (&'static str, FocusError)> {
    let mut classifier = Classifier::new(tolerance, allowed);
    let mut stated: HashMap<Key, Compact> = HashMap::new();
    for row in statement {
        let row = row.map_err(|e| ("statement", e))?;
        classifier.statement_rows += 1;
        let id = aliases
            .get(&*row.resource_id)
            .map(|alias| Text::from(alias.as_str()))
            .unwrap_or_else(|| row.resource_id.clone());
        let key = (id, row.sku.clone(), row.charge_start);
        match stated.get_mut(&key) {
            Some(entry) => {
                entry.cost += row.cost;
                entry.quantity += row.quantity;
            }
            None => {
                stated.insert(key, compact(row));
            }
        }
    }
    // Ledger rows of one key are summed too, as the merge join sums them, so that both
    // joins give the same report for any pair of files.
    let mut expected: HashMap<Key, FocusRow> = HashMap::new();
    let mut ledger_rows = 0;
    for row in ledger {
        let row = row.map_err(|e| ("ledger", e))?;
        ledger_rows += 1;
        let key: Key = (row.resource_id.clone(), row.sku.clone(), row.charge_start);
        match expected.get_mut(&key) {
            Some(entry) => {
                entry.cost += row.cost;
                entry.quantity += row.quantity;
            }
            None => {
                expected.insert(key, row);
            }
        }
    }
    let mut expected: Vec<(Key, FocusRow)> = expected.into_iter().collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, row) in expected {
        classifier.ledger_row(&row);
        match stated.remove(&key) {
            None => classifier.missing(&key, &row),
            Some(s) => classifier.matched(&key, &row, &s),
        }
    }
    classifier.ledger_rows = ledger_rows;
    let mut leftovers: Vec<(Key, Compact)> = stated.into_iter().collect();
    leftovers.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, s) in leftovers {
        classifier.unexpected(&key, &s);
    }
    Ok(classifier.finish())
}

/// Why a merge join could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeError {
    /// A file is not sorted by (ResourceId, SkuId, ChargePeriodStart): use [`reconcile`].
    NotSorted(&'static str, u64),
    /// A file is bad.
    Bad(&'static str, FocusError),
}

struct Sorted<I: Iterator<Item = Result<FocusRow, FocusError>>> {
    rows: std::iter::Peekable<I>,
    name: &'static str,
    last: Option<Key>,
    count: u64,
}

fn key_ref(row: &FocusRow) -> (&str, &str, i64) {
    (&row.resource_id, &row.sku, row.charge_start)
}

impl<I: Iterator<Item = Result<FocusRow, FocusError>>> Sorted<I> {
    fn take(&mut self) -> Result<FocusRow, MergeError> {
        match self.rows.next() {
            Some(Ok(row)) => {
                self.count += 1;
                Ok(row)
            }
            Some(Err(e)) => Err(MergeError::Bad(self.name, e)),
            None => Err(MergeError::NotSorted(self.name, self.count)),
        }
    }

    /// Takes every row of the next key, summed, checking the order.
    fn take_group(&mut self) -> Result<(Key, FocusRow), MergeError> {
        let mut first = self.take()?;
        while let Some(Ok(next)) = self.rows.peek() {
            if key_ref(next) != key_ref(&first) {
                break;
            }
            let more = self.take()?;
            first.cost += more.cost;
            first.quantity += more.quantity;
        }
        let key = (
            first.resource_id.clone(),
            first.sku.clone(),
            first.charge_start,
        );
        if self.last.as_ref().is_some_and(|last| *last >= key) {
            return Err(MergeError::NotSorted(self.name, self.count));
        }
        self.last = Some(key.clone());
        Ok((key, first))
    }
}

enum Side {
    Ledger,
    Statement,
    Both,
    Done,
}

fn next_side<L, S>(l: &mut Sorted<L>, s: &mut Sorted<S>) -> Result<Side, MergeError>
where
    L: Iterator<Item = Result<FocusRow, FocusError>>,
    S: Iterator<Item = Result<FocusRow, FocusError>>,
{
    Ok(match (l.rows.peek(), s.rows.peek()) {
        (Some(Err(e)), _) => return Err(MergeError::Bad("ledger", e.clone())),
        (_, Some(Err(e))) => return Err(MergeError::Bad("statement", e.clone())),
        (None, None) => Side::Done,
        (Some(Ok(_)), None) => Side::Ledger,
        (None, Some(Ok(_))) => Side::Statement,
        (Some(Ok(a)), Some(Ok(b))) => match key_ref(a).cmp(&key_ref(b)) {
            std::cmp::Ordering::Less => Side::Ledger,
            std::cmp::Ordering::Greater => Side::Statement,
            std::cmp::Ordering::Equal => Side::Both,
        },
    })
}

/// Reconciles two files sorted by (ResourceId, SkuId, ChargePeriodStart) — as the broker's
/// export and the members' statements are written — in one pass with memory bounded by
/// the discrepancies, not by the files. Members naming resources by their own ids, or an
/// unsorted file, need [`reconcile`] (`NotSorted` says so).
pub fn reconcile_sorted(
    ledger: impl Iterator<Item = Result<FocusRow, FocusError>>,
    statement: impl Iterator<Item = Result<FocusRow, FocusError>>,
    tolerance: Tolerance,
    allowed: &HashMap<String, BTreeSet<String>>,
) -> Result<Outcome, MergeError> {
    let mut classifier = Classifier::new(tolerance, allowed);
    let mut l = Sorted {
        rows: ledger.peekable(),
        name: "ledger",
        last: None,
        count: 0,
    };
    let mut s = Sorted {
        rows: statement.peekable(),
        name: "statement",
        last: None,
        count: 0,
    };
    loop {
        match next_side(&mut l, &mut s)? {
            Side::Done => break,
            Side::Ledger => {
                let (key, row) = l.take_group()?;
                classifier.ledger_row(&row);
                classifier.missing(&key, &row);
            }
            Side::Statement => {
                let (key, row) = s.take_group()?;
                classifier.unexpected(&key, &compact(row));
            }
            Side::Both => {
                let (key, row) = l.take_group()?;
                classifier.ledger_row(&row);
                let (_, stated) = s.take_group()?;
                classifier.matched(&key, &row, &compact(stated));
            }
        }
    }
    classifier.statement_rows = s.count;
    classifier.ledger_rows = l.count;
    Ok(classifier.finish())
}

/// The discrepancies as CSV.
pub fn discrepancies_csv<W: std::io::Write>(out: W, outcome: &Outcome) -> Result<(), csv::Error> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record([
        "class",
        "resource_id",
        "sku",
        "charge_period_start",
        "expected_cost",
        "stated_cost",
        "expected_quantity",
        "stated_quantity",
        "detail",
    ])?;
    let opt = |d: Option<Decimal>| d.map(|d| d.to_string()).unwrap_or_default();
    for d in &outcome.discrepancies {
        writer.write_record([
            d.class.clone(),
            d.resource_id.clone(),
            d.sku.clone(),
            d.charge_period_start.clone(),
            opt(d.expected_cost),
            opt(d.stated_cost),
            opt(d.expected_quantity),
            opt(d.stated_quantity),
            d.detail.clone(),
        ])?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests;
