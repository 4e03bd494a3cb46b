//! Streaming FOCUS CSV reader: the header, each value, and one currency per file.
//!
//! Owns turning bytes into [`FocusRow`]s, one row at a time with one reused record, so a
//! file of any size is read in bounded memory.
//!
//! **Invariant:** every row yielded carries valid values: costs and quantities are decimals,
//! the charge period is a pair of UTC times that ends after it starts, a row naming a
//! resource names its SKU (a row without a resource, as FOCUS allows for taxes, credits,
//! adjustments and purchases, need not), no field is longer than 64 KiB, and the currency is an ISO 4217 code equal to
//! the file's first. Anything else is a [`FocusError`] naming the row and the column, never
//! a panic.

use std::io::Read;

use rust_decimal::Decimal;
use serde::Serialize;

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

/// The columns reconciliation reads when a file has them.
pub const OPTIONAL: [&str; 2] = ["ConsumedQuantity", "ChargeCategory"];

/// The columns read, [`REQUIRED`] then [`OPTIONAL`], by their place in that order.
const COLUMNS: usize = REQUIRED.len() + OPTIONAL.len();
const BILLED_COST: usize = 0;
const BILLING_CURRENCY: usize = 1;
const CHARGE_START: usize = 2;
const CHARGE_END: usize = 3;
const PRICING_QUANTITY: usize = 4;
const RESOURCE_ID: usize = 5;
const SKU_ID: usize = 6;
const REGION_ID: usize = 7;
const SUB_ACCOUNT_ID: usize = 8;
const CONSUMED_QUANTITY: usize = 9;
const CHARGE_CATEGORY: usize = 10;

/// A column's name, by its place in [`REQUIRED`] then [`OPTIONAL`].
fn column_name(column: usize) -> &'static str {
    REQUIRED
        .get(column)
        .or_else(|| OPTIONAL.get(column - REQUIRED.len()))
        .copied()
        .unwrap_or("-")
}

/// The reader's buffer: large enough that reading a file costs few system calls (a file
/// is best passed unbuffered, so that its bytes are copied once).
const BUFFER: usize = 256 * 1024;

/// Largest field accepted.
const MAX_FIELD: usize = 64 * 1024;

/// One FOCUS row, as reconciliation needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FocusRow {
    /// Resource; empty for a row that names none (a tax, a credit…).
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
    /// ConsumedQuantity (hours running), when the file has the column and the row a value:
    /// what the clock-skew tolerance scales with.
    pub consumed: Option<Decimal>,
    /// ChargeCategory (`Usage` when the file has no such column or the row no value).
    pub category: Text,
}

impl FocusRow {
    /// Adds another row of the same key: costs and quantities summed.
    pub fn add(&mut self, other: &Self) {
        self.cost += other.cost;
        self.quantity += other.quantity;
        self.consumed = match (self.consumed, other.consumed) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
    }
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
    record: csv::ByteRecord,
    /// Where each column of [`REQUIRED`] then [`OPTIONAL`] is in the header.
    index: [Option<usize>; COLUMNS],
    row: u64,
    currency: Option<Text>,
    /// The last resource id, SKU, region, tenant and category, shared by the next equal
    /// value.
    last: [Option<Text>; 5],
    /// The period every row must fall in, when one is set ([`Self::within`]).
    period: Option<crate::billing::Period>,
    /// Fields in the header.
    width: usize,
    /// Where a chunk of a split file ends (`split.rs`).
    bound: Option<super::split::Bound>,
    /// Set once the reader stopped: it yields nothing more.
    done: bool,
    /// The times parsed last.
    dates: Dates,
}

/// The last two times parsed: a row's charge period usually starts where a neighbour's
/// ends, so most times are parsed once for two rows.
#[derive(Default)]
struct Dates {
    recent: [(String, i64); 2],
    next: usize,
}

impl Dates {
    fn parse(&mut self, text: &str) -> Option<i64> {
        if let Some((_, ms)) = self.recent.iter().find(|(t, _)| t == text) {
            return Some(*ms);
        }
        let ms = parse_iso(text)?;
        let slot = &mut self.recent[self.next];
        slot.0.clear();
        slot.0.push_str(text);
        slot.1 = ms;
        self.next = 1 - self.next;
        Some(ms)
    }
}

impl<R: Read> FocusReader<R> {
    /// Reads the header.
    pub fn new(input: R) -> Result<Self, FocusError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .buffer_capacity(BUFFER)
            .from_reader(input);
        if let Some(encoding) = wide_encoding(
            reader
                .byte_headers()
                .map_err(|e| csv_error(0, &e))?
                .as_slice(),
        ) {
            return Err(FocusError {
                row: 0,
                column: "-".to_owned(),
                message: format!(
                    "the file is {encoding}, not UTF-8: convert it first (e.g. `iconv -f {encoding} -t UTF-8`)"
                ),
            });
        }
        let headers = reader.headers().map_err(|e| csv_error(0, &e))?.clone();
        let width = headers.len();
        let position = |name: &str| {
            headers
                .iter()
                .position(|h| h.trim_start_matches('\u{feff}') == name)
        };
        let mut index = [None; COLUMNS];
        for (i, name) in REQUIRED.iter().enumerate() {
            index[i] = Some(position(name).ok_or_else(|| FocusError {
                row: 0,
                column: (*name).to_owned(),
                message: "required column is missing from the header".into(),
            })?);
        }
        for (i, name) in OPTIONAL.iter().enumerate() {
            index[REQUIRED.len() + i] = position(name);
        }
        Ok(Self {
            reader,
            record: csv::ByteRecord::new(),
            index,
            row: 0,
            currency: None,
            last: Default::default(),
            period: None,
            width,
            bound: None,
            done: false,
            dates: Dates::default(),
        })
    }

    /// The byte offset read so far (past the header, once read).
    pub(super) fn position(&self) -> u64 {
        self.reader.position().byte()
    }

    /// Makes this reader one chunk of a split file.
    pub(super) fn bound(&mut self, bound: super::split::Bound) {
        self.bound = Some(bound);
    }

    /// A reader of another chunk of the same file: `input` starts at a line, and shares
    /// this reader's header and period.
    pub(super) fn sibling(&self, input: R, mut bound: super::split::Bound) -> Self {
        bound.width = Some(self.width);
        Self {
            reader: csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .buffer_capacity(BUFFER)
                .from_reader(input),
            record: csv::ByteRecord::new(),
            index: self.index,
            row: 0,
            currency: None,
            last: Default::default(),
            period: self.period,
            width: self.width,
            bound: Some(bound),
            done: false,
            dates: Dates::default(),
        }
    }

    /// For a chunk reader: `Some(aligned)` when `record` is past its chunk (the next one's
    /// first record, or one that runs into it), else none.
    fn past_bound(&self, record: &csv::ByteRecord) -> Option<bool> {
        let bound = self.bound.as_ref()?;
        let (line_ends, next) = bound.until?;
        let start = bound.base + record.position().map_or(0, csv::Position::byte);
        if start >= line_ends {
            // Only line ends lie between: the record is the next chunk's first.
            return Some(start <= next);
        }
        // A record that runs past the next chunk's start: that start was inside a field.
        (bound.base + self.position() > next).then_some(false)
    }

    /// Stops the reader; a chunk reader reports whether it ended where the next chunk
    /// starts, and its currency.
    fn finish(&mut self, aligned: bool) {
        self.done = true;
        if let Some(bound) = &self.bound {
            bound
                .report
                .aligned
                .store(aligned, std::sync::atomic::Ordering::Release);
            *bound
                .report
                .currency
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = self.currency.clone();
        }
    }

    /// Refuses rows whose charge period starts outside `period` (a statement for another
    /// month, or one that strays out of its own), naming the row.
    #[must_use]
    pub fn within(mut self, period: crate::billing::Period) -> Self {
        self.period = Some(period);
        self
    }

    fn parse(&mut self, record: &csv::ByteRecord) -> Result<FocusRow, FocusError> {
        let row = self.row;
        // The whole record at once (one pass, fast on ASCII); a field is then UTF-8 when it
        // starts and ends on a character boundary of the whole (checked without a pass).
        let Ok(whole) = std::str::from_utf8(record.as_slice()) else {
            return Err(FocusError {
                row,
                column: "-".into(),
                message: NOT_UTF8.into(),
            });
        };
        let field = |column: usize| -> Result<&str, FocusError> {
            let Some(range) = self.index[column].and_then(|i| record.range(i)) else {
                return Ok("");
            };
            let value = whole.get(range).ok_or_else(|| FocusError {
                row,
                column: column_name(column).to_owned(),
                message: NOT_UTF8.into(),
            })?;
            if value.len() > MAX_FIELD {
                return Err(FocusError {
                    row,
                    column: column_name(column).to_owned(),
                    message: format!("value longer than {MAX_FIELD} bytes"),
                });
            }
            Ok(value)
        };
        let decimal = |column: usize| -> Result<Decimal, FocusError> {
            let raw = field(column)?;
            raw.trim().parse::<Decimal>().map_err(|_| FocusError {
                row,
                column: column_name(column).to_owned(),
                message: format!("`{}` is not a decimal number", truncate(raw)),
            })
        };
        let required = |column: usize| -> Result<&str, FocusError> {
            let raw = field(column)?;
            if raw.trim().is_empty() {
                Err(FocusError {
                    row,
                    column: column_name(column).to_owned(),
                    message: "must not be empty".into(),
                })
            } else {
                Ok(raw)
            }
        };
        let currency = field(BILLING_CURRENCY)?;
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
        let start = field(CHARGE_START)?;
        let charge_start = self.dates.parse(start).ok_or_else(|| FocusError {
            row,
            column: "ChargePeriodStart".into(),
            message: format!(
                "`{}` is not a UTC time (YYYY-MM-DDTHH:MM:SSZ)",
                truncate(start)
            ),
        })?;
        let end = field(CHARGE_END)?;
        let charge_end = self.dates.parse(end).ok_or_else(|| FocusError {
            row,
            column: "ChargePeriodEnd".into(),
            message: format!("`{}` is not a UTC time", truncate(end)),
        })?;
        if let Some(period) = self.period {
            if charge_start < period.start_ms() || charge_start >= period.end_ms() {
                return Err(FocusError {
                    row,
                    column: "ChargePeriodStart".into(),
                    message: format!("{} is outside the period {period}", truncate(start)),
                });
            }
        }
        if charge_end <= charge_start {
            return Err(FocusError {
                row,
                column: "ChargePeriodEnd".into(),
                message: "ends before it starts".into(),
            });
        }
        let resource_id = field(RESOURCE_ID)?.trim();
        // A row without a resource (FOCUS allows it for taxes, credits, adjustments and
        // purchases) need not name a SKU; one with a resource must.
        let sku = if resource_id.is_empty() {
            field(SKU_ID)?
        } else {
            required(SKU_ID)?
        };
        let category = match field(CHARGE_CATEGORY)?.trim() {
            "" => "Usage",
            c => c,
        };
        let (region, tenant) = (field(REGION_ID)?, field(SUB_ACCOUNT_ID)?);
        let (cost, quantity) = (decimal(BILLED_COST)?, decimal(PRICING_QUANTITY)?);
        let consumed = match field(CONSUMED_QUANTITY)?.trim() {
            "" => None,
            _ => Some(decimal(CONSUMED_QUANTITY)?),
        };
        let [last_resource, last_sku, last_region, last_tenant, last_category] = &mut self.last;
        Ok(FocusRow {
            resource_id: intern(last_resource, resource_id),
            sku: intern(last_sku, sku),
            charge_start,
            region: intern(last_region, region),
            currency,
            cost,
            quantity,
            tenant: intern(last_tenant, tenant),
            consumed,
            category: intern(last_category, category),
        })
    }
}

const NOT_UTF8: &str = "the file is not UTF-8 (Latin-1 or another 8-bit encoding? convert it first, e.g. `iconv -f LATIN1 -t UTF-8`)";

fn truncate(value: &str) -> String {
    value.chars().take(40).collect()
}

/// The UTF-16 a header's bytes betray: a byte-order mark, or NUL bytes between ASCII
/// letters (a UTF-16 file without one).
fn wide_encoding(header: &[u8]) -> Option<&'static str> {
    if header.starts_with(&[0xFF, 0xFE]) {
        return Some("UTF-16LE");
    }
    if header.starts_with(&[0xFE, 0xFF]) {
        return Some("UTF-16BE");
    }
    let first_nul = header.iter().position(|b| *b == 0)?;
    Some(if first_nul % 2 == 0 {
        "UTF-16BE"
    } else {
        "UTF-16LE"
    })
}

fn csv_error(row: u64, e: &csv::Error) -> FocusError {
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => NOT_UTF8.to_owned(),
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
        if self.done {
            return None;
        }
        let mut record = std::mem::take(&mut self.record);
        let read = self.reader.read_byte_record(&mut record);
        self.row += 1;
        let result = match read {
            Ok(false) => {
                // The last chunk (or a whole file) ends at the end; another chunk must not.
                let last = self.bound.as_ref().is_none_or(|b| b.until.is_none());
                self.finish(last);
                None
            }
            Ok(true) => match self.past_bound(&record) {
                Some(aligned) => {
                    self.finish(aligned);
                    None
                }
                None if self.bound.as_ref().is_some_and(|b| b.width.is_some())
                    && record.len() != self.width =>
                {
                    Some(Err(FocusError {
                        row: self.row,
                        column: "-".into(),
                        message: format!(
                            "{} fields where the header has {}",
                            record.len(),
                            self.width
                        ),
                    }))
                }
                None => Some(self.parse(&record)),
            },
            Err(e) => Some(Err(csv_error(self.row, &e))),
        };
        self.record = record;
        result
    }
}
