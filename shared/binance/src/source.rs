//! Where candles come from: Binance's REST API, or the bundled history replayed offline.

use chrono::Utc;
use pricecast_shared::Result;
use pricecast_shared::domain::{Candle, CandleSource, Interval, Symbol};

use crate::client::BinanceClient;
use crate::kline;
use crate::replay::ReplaySource;
use pricecast_shared::universe::{ListedSymbol, TRADING};

/// A source of kline pages; both variants go through the same parsing and validation.
#[derive(Clone, Debug)]
pub enum KlineSource {
    /// Binance's REST API.
    Binance(BinanceClient),
    /// The bundled history, served in Binance's format.
    Replay(ReplaySource),
}

impl KlineSource {
    /// Name for logs and the `source` column.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Binance(_) => CandleSource::Binance.as_str(),
            Self::Replay(_) => CandleSource::Replay.as_str(),
        }
    }

    /// The symbols it can serve, with their trading status: Binance's spot `exchangeInfo`, or
    /// the replayed symbols as trading.
    pub async fn listed_symbols(&self) -> Result<Vec<ListedSymbol>> {
        match self {
            Self::Binance(client) => client.exchange_symbols().await,
            Self::Replay(replay) => Ok(replay
                .symbols()
                .into_iter()
                .map(|symbol| ListedSymbol {
                    symbol,
                    status: TRADING.to_owned(),
                })
                .collect()),
        }
    }

    /// Up to `limit` closed, validated candles opening in `[start_ms, end_ms]`, oldest first.
    pub async fn klines(
        &self,
        symbol: &Symbol,
        interval: Interval,
        start_ms: i64,
        end_ms: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Candle>> {
        match self {
            Self::Binance(client) => {
                client
                    .klines(symbol, interval, start_ms, end_ms, limit)
                    .await
            }
            Self::Replay(replay) => {
                let page = replay.page(symbol, interval, start_ms, end_ms, limit)?;
                let candles = kline::parse_page(&page, symbol, interval, self.name())?;
                kline::validate_page(&candles)?;
                Ok(kline::closed_only(candles, Utc::now()))
            }
        }
    }
}
