//! The symbols a deployment follows: names, patterns (`*USDT`, `BTC*`) and `all`, less an
//! exclusion list, resolved against what the exchange lists (or what the database stores).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::Symbol;

/// Status of a symbol Binance lists as trading.
pub const TRADING: &str = "TRADING";

/// One entry of `PRICECAST_SYMBOLS` or `PRICECAST_SYMBOLS_EXCLUDE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SymbolSelector {
    /// One symbol by name.
    Name(Symbol),
    /// Every symbol matching a pattern where `*` stands for any letters (`*USDT`, `BTC*`).
    Pattern(String),
    /// Every symbol listed as trading.
    All,
}

impl SymbolSelector {
    /// Whether `symbol` is selected.
    pub fn matches(&self, symbol: &str) -> bool {
        match self {
            Self::Name(name) => name.as_str() == symbol,
            Self::Pattern(pattern) => glob_matches(pattern, symbol),
            Self::All => true,
        }
    }
}

/// `*` matches any run of characters, everything else itself.
fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split gives one part at least");
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

impl fmt::Display for SymbolSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => write!(f, "{name}"),
            Self::Pattern(pattern) => f.write_str(pattern),
            Self::All => f.write_str("all"),
        }
    }
}

impl FromStr for SymbolSelector {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("all") {
            return Ok(Self::All);
        }
        if s.contains('*') {
            let valid = s.len() <= 32
                && s.bytes().any(|b| b != b'*')
                && s.bytes()
                    .all(|b| b == b'*' || b.is_ascii_uppercase() || b.is_ascii_digit());
            return if valid {
                Ok(Self::Pattern(s.to_owned()))
            } else {
                Err(format!(
                    "'{s}' is not a symbol pattern: use upper-case letters and digits with * for \
                     any run of them, e.g. *USDT or BTC*"
                ))
            };
        }
        s.parse::<Symbol>()
            .map(Self::Name)
            .map_err(|e| e.to_string())
    }
}

/// A symbol as a catalogue lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedSymbol {
    /// The pair.
    pub symbol: Symbol,
    /// Binance's status: `TRADING`, `BREAK`, `HALT`, …
    pub status: String,
}

/// What the selectors resolved to, recorded in the run's report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The selectors, as configured (`*USDT,ETHBTC`).
    pub selected: String,
    /// The exclusions, as configured.
    pub excluded: String,
    /// The symbols worked on, sorted.
    pub symbols: Vec<Symbol>,
    /// Named symbols the exchange no longer lists (or lists as not trading) but the database
    /// stores: skipped this run.
    pub delisted: Vec<Symbol>,
}

impl Resolution {
    /// Resolves `selectors` less `excluded` against `listed` (the exchange's catalogue, or the
    /// stored series): patterns and `all` take the trading symbols that match; a name is kept
    /// when listed as trading, skipped as delisted when it is not but `stored` has it, and
    /// otherwise refused with a message naming it (a configuration error: exit 2).
    pub fn resolve(
        selectors: &[SymbolSelector],
        excluded: &[SymbolSelector],
        listed: &[ListedSymbol],
        stored: &[Symbol],
    ) -> Result<Self, String> {
        let trading: BTreeSet<&Symbol> = listed
            .iter()
            .filter(|l| l.status == TRADING)
            .map(|l| &l.symbol)
            .collect();
        let is_excluded = |s: &Symbol| excluded.iter().any(|e| e.matches(s.as_str()));
        let mut symbols = BTreeSet::new();
        let mut delisted = BTreeSet::new();
        let mut unknown = Vec::new();
        for selector in selectors {
            match selector {
                SymbolSelector::Name(name) if is_excluded(name) => {}
                SymbolSelector::Name(name) if trading.contains(name) => {
                    symbols.insert(name.clone());
                }
                SymbolSelector::Name(name) if stored.contains(name) => {
                    delisted.insert(name.clone());
                }
                SymbolSelector::Name(name) => {
                    let status = listed
                        .iter()
                        .find(|l| &l.symbol == name)
                        .map(|l| format!(" (listed as {})", l.status))
                        .unwrap_or_default();
                    unknown.push(format!("{name}{status}"));
                }
                pattern => symbols.extend(
                    trading
                        .iter()
                        .filter(|s| pattern.matches(s.as_str()) && !is_excluded(s))
                        .map(|s| (*s).clone()),
                ),
            }
        }
        if !unknown.is_empty() {
            return Err(format!(
                "PRICECAST_SYMBOLS: {} not listed as trading by the exchange and not stored: \
                 check the name, or leave it out",
                unknown.join(", ")
            ));
        }
        let join = |list: &[SymbolSelector]| {
            list.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        Ok(Self {
            selected: join(selectors),
            excluded: join(excluded),
            symbols: symbols.into_iter().collect(),
            delisted: delisted.into_iter().collect(),
        })
    }
}

/// Whether the selectors are plain names with nothing excluded, which need no catalogue.
pub fn only_names(selectors: &[SymbolSelector], excluded: &[SymbolSelector]) -> bool {
    excluded.is_empty()
        && selectors
            .iter()
            .all(|s| matches!(s, SymbolSelector::Name(_)))
}

/// The plain names among the selectors, in order.
pub fn names(selectors: &[SymbolSelector]) -> Vec<Symbol> {
    selectors
        .iter()
        .filter_map(|s| match s {
            SymbolSelector::Name(name) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Symbol {
        s.parse().expect("symbol")
    }

    fn sel(list: &str) -> Vec<SymbolSelector> {
        list.split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("selector"))
            .collect()
    }

    fn listed() -> Vec<ListedSymbol> {
        [
            ("BTCUSDT", TRADING),
            ("ETHUSDT", TRADING),
            ("BTCEUR", TRADING),
            ("ETHBTC", TRADING),
            ("LUNAUSDT", "BREAK"),
            ("USDCUSDT", TRADING),
        ]
        .into_iter()
        .map(|(s, status)| ListedSymbol {
            symbol: sym(s),
            status: status.to_owned(),
        })
        .collect()
    }

    fn resolved(selectors: &str, excluded: &str, stored: &[&str]) -> Result<Resolution, String> {
        let stored: Vec<Symbol> = stored.iter().map(|s| sym(s)).collect();
        Resolution::resolve(&sel(selectors), &sel(excluded), &listed(), &stored)
    }

    fn names_of(symbols: &[Symbol]) -> Vec<&str> {
        symbols.iter().map(Symbol::as_str).collect()
    }

    #[test]
    fn patterns_match_as_globs() {
        for (pattern, text, expected) in [
            ("*USDT", "BTCUSDT", true),
            ("*USDT", "USDT", true),
            ("*USDT", "BTCUSDC", false),
            ("BTC*", "BTCEUR", true),
            ("BTC*", "WBTCUSDT", false),
            ("*BTC*", "WBTCUSDT", true),
            ("B*T", "BT", true),
            ("B*T*T", "BTT", true),
            ("A*A", "A", false),
            ("B*T*T", "BTXT", true),
        ] {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern} {text}");
        }
    }

    #[test]
    fn selectors_parse_names_patterns_and_all() {
        assert_eq!(sel("all"), [SymbolSelector::All]);
        assert_eq!(sel("*USDT"), [SymbolSelector::Pattern("*USDT".into())]);
        assert_eq!(sel("BTCUSDT"), [SymbolSelector::Name(sym("BTCUSDT"))]);
        for bad in ["*", "*usdt", "BTC-*", "btc-usd"] {
            assert!(bad.parse::<SymbolSelector>().is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_take_the_trading_symbols_less_the_excluded() {
        let r = resolved("*USDT,ETHBTC", "USDCUSDT", &[]).expect("resolves");
        assert_eq!(names_of(&r.symbols), ["BTCUSDT", "ETHBTC", "ETHUSDT"]);
        assert_eq!(r.selected, "*USDT,ETHBTC");
        assert_eq!(r.excluded, "USDCUSDT");
        let all = resolved("all", "*EUR,ETH*", &[]).expect("resolves");
        assert_eq!(names_of(&all.symbols), ["BTCUSDT", "USDCUSDT"]);
    }

    #[test]
    fn an_unlisted_name_is_an_error_unless_it_is_stored() {
        let message = resolved("BTCUSDT,NOPEUSDT,LUNAUSDT", "", &[]).expect_err("unknown");
        assert!(
            message.contains("NOPEUSDT, LUNAUSDT (listed as BREAK)"),
            "{message}"
        );
        let r = resolved("BTCUSDT,LUNAUSDT", "", &["LUNAUSDT"]).expect("stored");
        assert_eq!(names_of(&r.symbols), ["BTCUSDT"]);
        assert_eq!(names_of(&r.delisted), ["LUNAUSDT"]);
    }
}
