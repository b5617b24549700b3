//! PostgreSQL's binary formats read straight into the lake's integers, without sqlx rows,
//! `rust_decimal` or chrono in between (the export decodes millions of values): rows of a
//! `COPY … TO STDOUT (FORMAT binary)`, `NUMERIC` and `TIMESTAMPTZ`.
//!
//! A binary `NUMERIC` is `ndigits: u16, weight: i16, sign: u16, dscale: u16` followed by
//! `ndigits` base-10000 digits (`i16`), most significant first; the value is
//! `Σ digit[i] × 10000^(weight − i)`. A binary COPY is a signature, flags and a header
//! extension, then rows (`i16` field count, then per field an `i32` length, -1 for NULL, and
//! the bytes), then an `i16` -1.

use std::fmt::Write as _;

use bytes::{Buf, BytesMut};

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
