//! PostgreSQL's binary formats read straight into the lake's integers, without sqlx rows,
//! `rust_decimal` or chrono in between (the export decodes millions of values): rows of a
//! `COPY … TO STDOUT (FORMAT binary)`, `NUMERIC` and `TIMESTAMPTZ`. And the other way, rows
//! of a `COPY … FROM STDIN (FORMAT binary)` written by [`CopyWriter`] for bulk loads.
//!
//! A binary `NUMERIC` is `ndigits: u16, weight: i16, sign: u16, dscale: u16` followed by
//! `ndigits` base-10000 digits (`i16`), most significant first; the value is
//! `Σ digit[i] × 10000^(weight − i)`. A binary COPY is a signature, flags and a header
//! extension, then rows (`i16` field count, then per field an `i32` length, -1 for NULL, and
//! the bytes), then an `i16` -1.

use std::fmt::Write as _;

use bytes::{Buf, BufMut, BytesMut};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::candle_row::{DECIMAL_PRECISION, DECIMAL_SCALE};

/// The first bytes of every binary COPY.
const COPY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags (`i32`) and header extension length (`i32`).
const COPY_HEADER_LEN: usize = COPY_SIGNATURE.len() + 8;
/// The field count that ends a binary COPY.
const COPY_TRAILER: i16 = -1;

/// Splits a binary COPY, arriving in chunks of any size, into rows of `N` fields.
#[derive(Debug, Default)]
pub struct CopyRows<const N: usize> {
    pending: BytesMut,
    header_read: bool,
    ended: bool,
}

impl<const N: usize> CopyRows<N> {
    /// Appends the next chunk of the COPY.
    pub fn push(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
    }

    /// Hands the next complete row's fields (`None` for NULL) to `decode`; `Ok(None)` when
    /// more bytes are needed or the COPY has ended.
    pub fn next_row<T, E: From<CopyError>>(
        &mut self,
        decode: impl FnOnce([Option<&[u8]>; N]) -> Result<T, E>,
    ) -> Result<Option<T>, E> {
        if !self.header_read {
            if self.pending.len() < COPY_HEADER_LEN {
                return Ok(None);
            }
            if !self.pending.starts_with(COPY_SIGNATURE) {
                return Err(CopyError("the COPY does not start with PGCOPY".into()).into());
            }
            let extension = u32::from_be_bytes(*array_at(&self.pending, COPY_HEADER_LEN - 4));
            let skip = COPY_HEADER_LEN + extension as usize;
            if self.pending.len() < skip {
                return Ok(None);
            }
            self.pending.advance(skip);
            self.header_read = true;
        }
        if self.ended || self.pending.len() < 2 {
            return Ok(None);
        }
        let count = i16::from_be_bytes(*array_at(&self.pending, 0));
        if count == COPY_TRAILER {
            self.ended = true;
            self.pending.advance(2);
            return Ok(None);
        }
        if usize::try_from(count).ok() != Some(N) {
            return Err(CopyError(format!("a COPY row has {count} fields, not {N}")).into());
        }
        let mut fields = [None; N];
        let mut ranges = [const { None }; N];
        let mut at = 2;
        for range in &mut ranges {
            let Some(len) = self.pending.get(at..at + 4) else {
                return Ok(None);
            };
            let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
            at += 4;
            if len >= 0 {
                let end = at + len as usize;
                if self.pending.len() < end {
                    return Ok(None);
                }
                *range = Some(at..end);
                at = end;
            }
        }
        for (field, range) in fields.iter_mut().zip(ranges) {
            *field = range.map(|r| &self.pending[r]);
        }
        let row = decode(fields);
        self.pending.advance(at);
        row.map(Some)
    }

    /// Checks that the COPY ended properly, with nothing after its trailer.
    pub fn finish(&self) -> Result<(), CopyError> {
        if self.ended && self.pending.is_empty() {
            Ok(())
        } else {
            Err(CopyError(format!(
                "the COPY ended early or with {} stray bytes",
                self.pending.len()
            )))
        }
    }
}

/// A binary COPY that does not follow PostgreSQL's format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyError(pub String);

fn array_at<const L: usize>(bytes: &[u8], at: usize) -> &[u8; L] {
    bytes[at..at + L].first_chunk::<L>().unwrap_or(&[0; L])
}

const SIGN_POSITIVE: u16 = 0x0000;
const SIGN_NEGATIVE: u16 = 0x4000;
const NBASE: i128 = 10_000;
/// Base-10000 digits in the lake's scale: 8 decimals are two of them.
const SCALE_DIGITS: i32 = DECIMAL_SCALE as i32 / 4;
/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Why a `NUMERIC` cannot be written to the lake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumericError {
    /// Non-zero digits beyond the lake's 8th decimal.
    Inexact,
    /// More digits than decimal(38, 8) holds.
    TooLarge,
    /// `NaN` or an infinity.
    NotFinite,
    /// Not a binary `NUMERIC`.
    Malformed,
}

impl NumericError {
    /// The reason, as the export reports it.
    pub fn reason(self) -> String {
        match self {
            Self::Inexact => format!(
                "it has more than {DECIMAL_SCALE} decimal places, which the lake's decimal({DECIMAL_PRECISION}, {DECIMAL_SCALE}) cannot hold exactly"
            ),
            Self::TooLarge => format!(
                "it has more than {DECIMAL_PRECISION} digits, more than the lake's decimal({DECIMAL_PRECISION}, {DECIMAL_SCALE}) holds"
            ),
            Self::NotFinite => "it is not a finite number".to_owned(),
            Self::Malformed => "it is not a binary NUMERIC".to_owned(),
        }
    }
}

/// A binary `NUMERIC` as decimal128's integer at the lake's scale (8): exact, or an error.
pub fn numeric_to_lake_decimal(bytes: &[u8]) -> Result<i128, NumericError> {
    let (header, digits) = bytes
        .split_first_chunk::<8>()
        .ok_or(NumericError::Malformed)?;
    let word = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let ndigits = usize::from(word(0));
    let weight = i32::from(word(2) as i16);
    let negative = match word(4) {
        SIGN_POSITIVE => false,
        SIGN_NEGATIVE => true,
        _ => return Err(NumericError::NotFinite),
    };
    if digits.len() != ndigits * 2 {
        return Err(NumericError::Malformed);
    }
    let mut mantissa: i128 = 0;
    // Power of 10000 of the last digit added to `mantissa`, at scale 8.
    let mut last_exponent = 0;
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        let digit = i16::from_be_bytes([pair[0], pair[1]]);
        if !(0..10_000).contains(&digit) {
            return Err(NumericError::Malformed);
        }
        let exponent = weight - i as i32 + SCALE_DIGITS;
        if exponent < 0 {
            if digit != 0 {
                return Err(NumericError::Inexact);
            }
            continue;
        }
        mantissa = mantissa
            .checked_mul(NBASE)
            .and_then(|m| m.checked_add(i128::from(digit)))
            .ok_or(NumericError::TooLarge)?;
        last_exponent = exponent;
    }
    if mantissa != 0 {
        mantissa = u32::try_from(last_exponent)
            .ok()
            .and_then(|e| NBASE.checked_pow(e))
            .and_then(|scale| mantissa.checked_mul(scale))
            .ok_or(NumericError::TooLarge)?;
    }
    if mantissa >= 10i128.pow(u32::from(DECIMAL_PRECISION)) {
        return Err(NumericError::TooLarge);
    }
    Ok(if negative { -mantissa } else { mantissa })
}

/// A binary `NUMERIC` as text (`-39610.14`), for error messages.
pub fn numeric_to_string(bytes: &[u8]) -> String {
    let Some((header, digits)) = bytes.split_first_chunk::<8>() else {
        return "(malformed NUMERIC)".to_owned();
    };
    let weight = i32::from(i16::from_be_bytes([header[2], header[3]]));
    let sign = match u16::from_be_bytes([header[4], header[5]]) {
        SIGN_POSITIVE => "",
        SIGN_NEGATIVE => "-",
        0xD000 => return "Infinity".to_owned(),
        0xF000 => return "-Infinity".to_owned(),
        _ => return "NaN".to_owned(),
    };
    let mut text = String::new();
    for pair in digits.chunks_exact(2) {
        let _ = write!(text, "{:04}", i16::from_be_bytes([pair[0], pair[1]]));
    }
    let point = (weight + 1) * 4;
    let point = if point < 0 {
        text.insert_str(0, &"0".repeat(point.unsigned_abs() as usize));
        0
    } else {
        point as usize
    };
    if text.len() < point {
        text.push_str(&"0".repeat(point - text.len()));
    }
    let (int, frac) = text.split_at(point);
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// Writes the rows of a binary `COPY … FROM STDIN`: the header first, then one row at a time
/// (a field count, then each field), then the trailer.
#[derive(Debug)]
pub struct CopyWriter {
    buf: BytesMut,
}

impl Default for CopyWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CopyWriter {
    /// A COPY with its header (no flags, no header extension) and no rows yet.
    pub fn new() -> Self {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.put_slice(COPY_SIGNATURE);
        buf.put_i32(0);
        buf.put_i32(0);
        Self { buf }
    }

    /// Starts a row of `fields` fields; exactly that many field writes must follow.
    pub fn row(&mut self, fields: i16) {
        self.buf.put_i16(fields);
    }

    /// A NULL field.
    pub fn null(&mut self) {
        self.buf.put_i32(-1);
    }

    /// A `TEXT` field.
    pub fn text(&mut self, value: &str) {
        self.buf.put_i32(field_len(value.len()));
        self.buf.put_slice(value.as_bytes());
    }

    /// An `INT8` field, or NULL.
    pub fn int8(&mut self, value: Option<i64>) {
        match value {
            Some(v) => {
                self.buf.put_i32(8);
                self.buf.put_i64(v);
            }
            None => self.null(),
        }
    }

    /// A `TIMESTAMPTZ` field: microseconds since 2000-01-01 UTC.
    pub fn timestamptz(&mut self, value: DateTime<Utc>) {
        self.buf.put_i32(8);
        self.buf.put_i64(value.timestamp_micros() - PG_EPOCH_MICROS);
    }

    /// A `NUMERIC` field keeping the decimal's scale, so PostgreSQL prints the same text.
    pub fn numeric(&mut self, value: Decimal) {
        let start = self.buf.len();
        self.buf.put_i32(0);
        encode_numeric(value, &mut self.buf);
        let len = field_len(self.buf.len() - start - 4);
        self.buf[start..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// A `NUMERIC` field, or NULL.
    pub fn optional_numeric(&mut self, value: Option<Decimal>) {
        match value {
            Some(v) => self.numeric(v),
            None => self.null(),
        }
    }

    /// Bytes written so far and not yet taken.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the bytes written so far, to send them while more rows are written.
    pub fn take(&mut self) -> BytesMut {
        self.buf.split()
    }

    /// Writes the trailer and takes the remaining bytes.
    pub fn finish(mut self) -> BytesMut {
        self.buf.put_i16(COPY_TRAILER);
        self.buf
    }
}

/// A field's length as the COPY's `i32` (fields here are far below 2 GiB).
fn field_len(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Appends `value` as a binary `NUMERIC`: base-10000 digits with the decimal point on a digit
/// boundary, trailing zero digits left out, and `dscale` set to the decimal's scale (zero's 0).
pub fn encode_numeric(value: Decimal, out: &mut BytesMut) {
    let scale = value.scale();
    // rust_decimal's mantissa is at most 96 bits and its scale at most 28, so the point is
    // moved to a base-10000 boundary (×10³ at most) without overflowing a u128.
    let pad = (4 - scale % 4) % 4;
    let mut mantissa = value.mantissa().unsigned_abs() * 10u128.pow(pad);
    let fraction_digits = ((scale + pad) / 4) as i32;
    // At most 30 decimal digits: 8 base-10000 digits, least significant first.
    let mut digits = [0i16; 8];
    let mut count = 0;
    while mantissa > 0 {
        digits[count] = (mantissa % 10_000) as i16;
        mantissa /= 10_000;
        count += 1;
    }
    let weight = if count == 0 {
        0
    } else {
        count as i32 - fraction_digits - 1
    };
    let trailing_zeros = digits[..count].iter().take_while(|&&d| d == 0).count();
    let significant = &digits[trailing_zeros..count];
    let sign = if value.is_sign_negative() && count > 0 {
        SIGN_NEGATIVE
    } else {
        SIGN_POSITIVE
    };
    out.put_u16(significant.len() as u16);
    out.put_i16(weight as i16);
    out.put_u16(sign);
    // Zero goes without a scale, as sqlx sends it, so both write paths store the same text.
    out.put_u16(if count == 0 { 0 } else { scale as u16 });
    for &digit in significant.iter().rev() {
        out.put_i16(digit);
    }
}

/// A binary `TIMESTAMPTZ` (µs since 2000-01-01 UTC) as ms since the Unix epoch, rounded down
/// like chrono's `timestamp_millis`; `None` when it is not 8 bytes or out of range (±infinity).
pub fn timestamptz_to_millis(bytes: &[u8]) -> Option<i64> {
    let micros = i64::from_be_bytes(*bytes.first_chunk::<8>()?);
    if bytes.len() != 8 || micros == i64::MIN || micros == i64::MAX {
        return None;
    }
    Some(micros.checked_add(PG_EPOCH_MICROS)?.div_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes a decimal string as PostgreSQL's `numeric_send` does (test side only).
    fn numeric(text: &str) -> Vec<u8> {
        let (negative, text) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let int = int.trim_start_matches('0');
        // Left-pad the integer part and right-pad the fraction to whole base-10000 digits.
        let int = format!("{}{int}", "0".repeat((4 - int.len() % 4) % 4));
        let frac_padded = format!("{frac}{}", "0".repeat((4 - frac.len() % 4) % 4));
        let all = format!("{int}{frac_padded}");
        let mut digits: Vec<i16> = all
            .as_bytes()
            .chunks(4)
            .map(|c| {
                std::str::from_utf8(c)
                    .expect("utf8")
                    .parse()
                    .expect("digit")
            })
            .collect();
        let mut weight = (int.len() / 4) as i16 - 1;
        while digits.first() == Some(&0) {
            digits.remove(0);
            weight -= 1;
        }
        while digits.last() == Some(&0) {
            digits.pop();
        }
        if digits.is_empty() {
            weight = 0;
        }
        let sign = if negative {
            SIGN_NEGATIVE
        } else {
            SIGN_POSITIVE
        };
        let mut out = Vec::new();
        out.extend((digits.len() as u16).to_be_bytes());
        out.extend(weight.to_be_bytes());
        out.extend(sign.to_be_bytes());
        out.extend((frac.len() as u16).to_be_bytes());
        for d in digits {
            out.extend(d.to_be_bytes());
        }
        out
    }

    fn lake(text: &str) -> Result<i128, NumericError> {
        numeric_to_lake_decimal(&numeric(text))
    }

    #[test]
    fn values_scale_to_eight_decimals_exactly() {
        assert_eq!(lake("0"), Ok(0));
        assert_eq!(lake("0.00000000"), Ok(0));
        assert_eq!(lake("39610.14"), Ok(3_961_014_000_000));
        assert_eq!(lake("39610.14000000"), Ok(3_961_014_000_000));
        assert_eq!(lake("0.00000001"), Ok(1));
        assert_eq!(lake("0.000000010000"), Ok(1));
        assert_eq!(lake("1.23456789"), Ok(123_456_789));
        assert_eq!(lake("10000"), Ok(1_000_000_000_000));
        assert_eq!(lake("100000000"), Ok(10_000_000_000_000_000));
        assert_eq!(lake("12345678901234.5"), Ok(1_234_567_890_123_450_000_000));
    }

    #[test]
    fn negative_values_keep_their_sign() {
        assert_eq!(lake("-2.5"), Ok(-250_000_000));
        assert_eq!(lake("-0.00000001"), Ok(-1));
        assert_eq!(lake("-39610.14"), Ok(-3_961_014_000_000));
    }

    #[test]
    fn more_than_eight_decimals_are_refused() {
        assert_eq!(lake("0.000000001"), Err(NumericError::Inexact));
        assert_eq!(lake("1.123456785"), Err(NumericError::Inexact));
        assert_eq!(lake("-0.00000000001"), Err(NumericError::Inexact));
        assert_eq!(lake("12345678.000000000001"), Err(NumericError::Inexact));
    }

    #[test]
    fn very_large_values_fit_up_to_38_digits() {
        let largest = "999999999999999999999999999999.99999999";
        assert_eq!(lake(largest), Ok(10i128.pow(38) - 1));
        assert_eq!(lake(&format!("-{largest}")), Ok(1 - 10i128.pow(38)));
        assert_eq!(
            lake("1000000000000000000000000000000"),
            Err(NumericError::TooLarge)
        );
        assert_eq!(
            lake(&format!("1{}", "0".repeat(200))),
            Err(NumericError::TooLarge)
        );
    }

    #[test]
    fn nan_infinities_and_garbage_are_refused() {
        let special = |sign: u16| {
            let mut out = vec![0, 0, 0, 0];
            out.extend(sign.to_be_bytes());
            out.extend([0, 0]);
            numeric_to_lake_decimal(&out)
        };
        assert_eq!(special(0xC000), Err(NumericError::NotFinite));
        assert_eq!(special(0xD000), Err(NumericError::NotFinite));
        assert_eq!(special(0xF000), Err(NumericError::NotFinite));
        assert_eq!(
            numeric_to_lake_decimal(&[0, 1]),
            Err(NumericError::Malformed)
        );
        let mut short = numeric("1.5");
        short.pop();
        assert_eq!(
            numeric_to_lake_decimal(&short),
            Err(NumericError::Malformed)
        );
    }

    #[test]
    fn numerics_print_as_postgres_does_without_trailing_zeros() {
        for text in [
            "0",
            "39610.14",
            "-2.5",
            "0.000000001",
            "10000",
            "123456789.00000001",
        ] {
            assert_eq!(numeric_to_string(&numeric(text)), text);
        }
        assert_eq!(numeric_to_string(&numeric("39610.14000000")), "39610.14");
    }

    fn encoded(text: &str) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_numeric(text.parse().expect("decimal"), &mut out);
        out.to_vec()
    }

    #[test]
    fn decimals_encode_as_postgres_sends_them() {
        assert_eq!(encoded("0.00000000"), numeric("0"), "zero as sqlx sends it");
        for text in [
            "0",
            "0.00000001",
            "-0.00000001",
            "1",
            "10000",
            "39610.14000000",
            "12345678.12345678",
            "0.0001",
            "0.001",
            "1.23456789",
            "100000000",
            "79228162514264337593543950335",
            "7.9228162514264337593543950335",
            "0.0000000000000000000000000001",
        ] {
            assert_eq!(encoded(text), numeric(text), "{text}");
            assert_eq!(
                numeric_to_string(&encoded(text)),
                numeric_to_string(&numeric(text)),
                "{text}"
            );
        }
    }

    #[test]
    fn written_copies_read_back_field_by_field() {
        let mut writer = CopyWriter::new();
        writer.row(3);
        writer.text("BTCUSDT");
        writer.optional_numeric(None);
        writer.numeric("0.01000000".parse().expect("decimal"));
        let mut first = writer.take().to_vec();
        writer.row(3);
        writer.text("");
        writer.int8(Some(-7));
        writer.timestamptz(DateTime::<Utc>::from_timestamp_millis(946_684_800_001).expect("time"));
        first.extend_from_slice(&writer.finish());
        let mut reader = CopyRows::<3>::default();
        reader.push(&first);
        let mut rows = Vec::new();
        while let Some(row) = reader
            .next_row(|fields| Ok::<_, CopyError>(fields.map(|f| f.map(<[u8]>::to_vec))))
            .expect("row")
        {
            rows.push(row);
        }
        reader.finish().expect("trailer");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0].as_deref(), Some(&b"BTCUSDT"[..]));
        assert_eq!(rows[0][1], None);
        assert_eq!(
            numeric_to_string(rows[0][2].as_deref().expect("numeric")),
            "0.01"
        );
        assert_eq!(rows[1][1].as_deref(), Some(&(-7i64).to_be_bytes()[..]));
        assert_eq!(
            timestamptz_to_millis(rows[1][2].as_deref().expect("time")),
            Some(946_684_800_001)
        );
    }

    /// A binary COPY of rows of two fields.
    fn copy_of(rows: &[[Option<&[u8]>; 2]]) -> Vec<u8> {
        let mut out = COPY_SIGNATURE.to_vec();
        out.extend([0; 8]);
        for row in rows {
            out.extend(2i16.to_be_bytes());
            for field in row {
                match field {
                    Some(bytes) => {
                        out.extend((bytes.len() as i32).to_be_bytes());
                        out.extend(*bytes);
                    }
                    None => out.extend((-1i32).to_be_bytes()),
                }
            }
        }
        out.extend(COPY_TRAILER.to_be_bytes());
        out
    }

    /// A row of two fields, the second nullable.
    type Pair = (Vec<u8>, Option<Vec<u8>>);

    fn read_all(copy: &[u8], chunk: usize) -> Result<Vec<Pair>, CopyError> {
        let mut reader = CopyRows::<2>::default();
        let mut rows = Vec::new();
        for piece in copy.chunks(chunk) {
            reader.push(piece);
            while let Some(row) = reader.next_row(|[a, b]| {
                Ok::<_, CopyError>((a.unwrap_or_default().to_vec(), b.map(<[u8]>::to_vec)))
            })? {
                rows.push(row);
            }
        }
        reader.finish()?;
        Ok(rows)
    }

    #[test]
    fn copy_rows_are_split_whatever_the_chunks() {
        let copy = copy_of(&[[Some(b"ab"), None], [Some(b""), Some(b"xyz")]]);
        let expected = vec![(b"ab".to_vec(), None), (Vec::new(), Some(b"xyz".to_vec()))];
        for chunk in [1, 2, 3, 7, copy.len()] {
            assert_eq!(
                read_all(&copy, chunk),
                Ok(expected.clone()),
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn truncated_or_foreign_copies_are_refused() {
        let copy = copy_of(&[[Some(b"ab"), None]]);
        assert!(read_all(&copy[..copy.len() - 2], 5).is_err(), "no trailer");
        assert!(read_all(b"COPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\0\0\0", 64).is_err());
        let mut three = COPY_SIGNATURE.to_vec();
        three.extend([0; 8]);
        three.extend(3i16.to_be_bytes());
        assert!(read_all(&three, 64).is_err(), "wrong field count");
    }

    #[test]
    fn timestamps_become_unix_milliseconds() {
        let at = |micros: i64| timestamptz_to_millis(&micros.to_be_bytes());
        assert_eq!(at(0), Some(946_684_800_000));
        assert_eq!(at(1_500), Some(946_684_800_001));
        assert_eq!(
            at(-PG_EPOCH_MICROS - 1),
            Some(-1),
            "rounds down before 1970"
        );
        assert_eq!(at(i64::MAX), None, "infinity");
        assert_eq!(timestamptz_to_millis(&[0; 4]), None);
    }
}
