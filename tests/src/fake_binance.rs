//! A local stand-in for Binance's REST API: `GET /api/v3/klines` in Binance's exact JSON format
//! (arrays, prices as strings with eight decimals), its rate-limit headers and error bodies, and
//! switchable faults (429 with Retry-After, 418, 500, slow answers, malformed pages, invalid
//! candles). It serves the bundled real hourly history, with its real 2023-03-24 gap, and any
//! series a test adds, over REST and as Binance's bulk archive: one zipped CSV per month under
//! `data/spot/monthly/klines/…` with its `.CHECKSUM`, times in microseconds from 2025 on as in
//! the real archive, and switchable unpublished or corrupted months.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pricecast_binance::archive::Month;
use pricecast_binance::{kline, replay};
use pricecast_shared::domain::{Candle, Interval, Symbol};
use rust_decimal::Decimal;
use salvo::conn::TcpListener;
use salvo::http::StatusCode;
use salvo::prelude::*;
use salvo::server::ServerHandle;
use sha2::{Digest, Sha256};

/// Binance's price and volume scale on the wire.
const WIRE_SCALE: u32 = 8;
/// Weight of one klines request with limit 1000 (Binance's documented cost).
const KLINES_WEIGHT: u32 = 2;
/// Weight of `GET /api/v3/exchangeInfo` without parameters.
const EXCHANGE_INFO_WEIGHT: u32 = 20;
/// The real archive's spot files give times in microseconds from this month on.
const ARCHIVE_MICROSECONDS_FROM: Month = Month {
    year: 2025,
    month: 1,
};

/// A fault applied to the next klines request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No fault: answer normally (to target a later request).
    Pass,
    /// HTTP 429 with `Retry-After: secs`.
    RateLimited {
        /// Seconds in the Retry-After header.
        retry_after_secs: u64,
    },
    /// HTTP 418: the IP is banned.
    Banned,
    /// HTTP 500.
    ServerError,
    /// Answers correctly after a delay.
    Slow(Duration),
    /// A body that is not a kline page.
    Malformed,
    /// A page whose candle at this index has high < low.
    HighBelowLow(usize),
    /// A page whose candle at this index has a zero close.
    ZeroPrice(usize),
    /// A page whose candle at this index is shifted off the interval grid by a second.
    Misaligned(usize),
    /// A page with the candle at this index repeated.
    Duplicate(usize),
    /// A page with the candles at this index and the next swapped.
    OutOfOrder(usize),
}

/// One request the fake received.
#[derive(Clone, Debug)]
pub struct KlinesRequest {
    /// `symbol` parameter.
    pub symbol: String,
    /// `interval` parameter.
    pub interval: String,
    /// `startTime` parameter.
    pub start_time: Option<i64>,
    /// `endTime` parameter.
    pub end_time: Option<i64>,
    /// `limit` parameter.
    pub limit: usize,
}

/// The candles served for each symbol and interval.
type SeriesMap = HashMap<(Symbol, Interval), Arc<Vec<Candle>>>;

#[derive(Default)]
struct State {
    series: Mutex<SeriesMap>,
    faults: Mutex<VecDeque<Fault>>,
    requests: Mutex<Vec<KlinesRequest>>,
    used_weight: AtomicU32,
    served: AtomicU64,
    /// Archive months answered with 404 (not published yet).
    unpublished: Mutex<HashSet<Month>>,
    /// Archive months whose `.CHECKSUM` does not match their zip.
    corrupted: Mutex<HashSet<Month>>,
    /// Archive files downloaded (zips and checksums), by file name.
    archive_downloads: Mutex<Vec<String>>,
    /// Symbols `exchangeInfo` lists beyond the served ones, with their status (`BREAK`, …).
    listed: Mutex<HashMap<String, String>>,
    /// Served symbols `exchangeInfo` leaves out (delisted).
    unlisted: Mutex<HashSet<String>>,
    /// Added to every klines answer.
    latency: Mutex<Duration>,
    /// Weight allowed per calendar minute; past it, 429 with Retry-After as Binance does.
    weight_budget: Mutex<Option<WeightBudget>>,
    /// 429 answers given for going over the weight budget.
    rate_limited: AtomicU64,
}

/// A per-minute request-weight budget, counted as Binance counts it.
#[derive(Clone, Copy, Debug)]
struct WeightBudget {
    limit: u32,
    minute: i64,
    used: u32,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The running fake; stops when dropped.
pub struct FakeBinance {
    state: Arc<State>,
    addr: SocketAddr,
    handle: ServerHandle,
}

impl FakeBinance {
    /// Starts on a free loopback port, serving the bundled BTCUSDT and ETHUSDT hourly history.
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        for name in replay::BUNDLED_SYMBOLS {
            let symbol: Symbol = name.parse().expect("bundled symbol");
            let candles = replay::bundled_candles(&symbol).expect("bundled history");
            lock(&state.series).insert(
                (symbol, replay::BUNDLED_INTERVAL),
                Arc::new(candles.into_iter().map(as_exchange_candle).collect()),
            );
        }
        let router = Router::new()
            .push(Router::with_path("api/v3/klines").get(Klines {
                state: state.clone(),
            }))
            .push(Router::with_path("api/v3/ping").get(Ping))
            .push(Router::with_path("api/v3/exchangeInfo").get(ExchangeInfo {
                state: state.clone(),
            }))
            .push(
                Router::with_path("data/spot/monthly/klines/{symbol}/{interval}/{file}").get(
                    ArchiveFile {
                        state: state.clone(),
                    },
                ),
            );
        let acceptor = TcpListener::new("127.0.0.1:0")
            .try_bind()
            .await
            .expect("bind the fake Binance server");
        let addr = acceptor.local_addr().expect("local address");
        let server = Server::new(acceptor);
        let handle = server.handle();
        tokio::spawn(server.serve(router));
        Self {
            state,
            addr,
            handle,
        }
    }

    /// Base URL to give the collector (`BINANCE_BASE_URL`).
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Adds or replaces a series (candles oldest first, as an exchange would have them).
    pub fn set_series(&self, candles: Vec<Candle>) {
        let Some(first) = candles.first() else {
            return;
        };
        let key = (first.symbol.clone(), first.interval);
        lock(&self.state.series).insert(key, Arc::new(candles));
    }

    /// The series served for a symbol and interval.
    pub fn series(&self, symbol: &str, interval: Interval) -> Vec<Candle> {
        let symbol: Symbol = symbol.parse().expect("symbol");
        lock(&self.state.series)
            .get(&(symbol, interval))
            .map(|c| c.as_ref().clone())
            .unwrap_or_default()
    }

    /// Applies `fault` to the next request (faults queue up, one per request).
    pub fn push_fault(&self, fault: Fault) {
        lock(&self.state.faults).push_back(fault);
    }

    /// Sets the used weight reported in `X-MBX-USED-WEIGHT-1m`.
    pub fn set_used_weight(&self, weight: u32) {
        self.state.used_weight.store(weight, Ordering::Relaxed);
    }

    /// Lists `symbol` in `exchangeInfo` with `status` (e.g. `BREAK`) without serving klines.
    pub fn list_symbol(&self, symbol: &str, status: &str) {
        lock(&self.state.listed).insert(symbol.to_owned(), status.to_owned());
    }

    /// Leaves a served symbol out of `exchangeInfo`, as after a delisting.
    pub fn delist(&self, symbol: &str) {
        lock(&self.state.unlisted).insert(symbol.to_owned());
    }

    /// Adds `latency` to every klines answer, as a real network would.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.state.latency) = latency;
    }

    /// Counts request weight per calendar minute, reports it in `X-MBX-USED-WEIGHT-1m`, and
    /// answers 429 with `Retry-After` (seconds to the next minute) past `limit`.
    pub fn set_weight_budget(&self, limit: u32) {
        *lock(&self.state.weight_budget) = Some(WeightBudget {
            limit,
            minute: chrono::Utc::now().timestamp() / 60,
            used: 0,
        });
    }

    /// 429 answers given for going over the weight budget.
    pub fn rate_limited(&self) -> u64 {
        self.state.rate_limited.load(Ordering::Relaxed)
    }

    /// Every klines request received so far.
    pub fn requests(&self) -> Vec<KlinesRequest> {
        lock(&self.state.requests).clone()
    }

    /// Number of candles served so far.
    pub fn candles_served(&self) -> u64 {
        self.state.served.load(Ordering::Relaxed)
    }

    /// Base URL of the bulk archive (`BINANCE_ARCHIVE_URL`); the same server.
    pub fn archive_url(&self) -> String {
        self.base_url()
    }

    /// Answers the archive's files for `month` with 404, as before they are published.
    pub fn unpublish_archive_month(&self, month: Month) {
        lock(&self.state.unpublished).insert(month);
    }

    /// Makes the `.CHECKSUM` of `month`'s archive file disagree with the file.
    pub fn corrupt_archive_month(&self, month: Month) {
        lock(&self.state.corrupted).insert(month);
    }

    /// Names of the archive files downloaded so far (zips and checksums), in order.
    pub fn archive_downloads(&self) -> Vec<String> {
        lock(&self.state.archive_downloads).clone()
    }
}

impl Drop for FakeBinance {
    fn drop(&mut self) {
        self.handle.stop_forceful();
    }
}

/// Gives a history that kept only OHLCV the fields Binance always sends, derived
/// deterministically from the candle, and Binance's eight-decimal wire scale.
pub fn as_exchange_candle(mut c: Candle) -> Candle {
    let wire = |d: Decimal| {
        let mut d = d;
        d.rescale(WIRE_SCALE);
        d
    };
    let quote = (c.volume * (c.open + c.close) / Decimal::TWO).round_dp(WIRE_SCALE);
    c.quote_volume = Some(wire(c.quote_volume.unwrap_or(quote)));
    c.trades = Some(c.trades.unwrap_or_else(|| {
        let scaled = (c.volume * Decimal::TEN).trunc();
        i64::try_from(scaled.mantissa()).unwrap_or(0)
    }));
    c.taker_buy_base =
        Some(wire(c.taker_buy_base.unwrap_or_else(|| {
            (c.volume / Decimal::TWO).round_dp(WIRE_SCALE)
        })));
    c.taker_buy_quote =
        Some(wire(c.taker_buy_quote.unwrap_or_else(|| {
            (quote / Decimal::TWO).round_dp(WIRE_SCALE)
        })));
    c.open = wire(c.open);
    c.high = wire(c.high);
    c.low = wire(c.low);
    c.close = wire(c.close);
    c.volume = wire(c.volume);
    c.source = "binance".into();
    c
}

struct Ping;

#[async_trait]
impl Handler for Ping {
    async fn handle(&self, _: &mut Request, _: &mut Depot, res: &mut Response, _: &mut FlowCtrl) {
        res.render(Text::Json("{}"));
    }
}

struct Klines {
    state: Arc<State>,
}

/// Charges `weight` to the minute's budget; `Err(retry_after_secs)` when it is spent. Without a
/// budget, adds it to the reported used weight.
fn charge(state: &State, weight: u32) -> Result<u32, u64> {
    let mut budget = lock(&state.weight_budget);
    let Some(budget) = budget.as_mut() else {
        return Ok(state.used_weight.fetch_add(weight, Ordering::Relaxed) + weight);
    };
    let now = chrono::Utc::now();
    let minute = now.timestamp() / 60;
    if minute != budget.minute {
        budget.minute = minute;
        budget.used = 0;
    }
    budget.used += weight;
    if budget.used > budget.limit {
        state.rate_limited.fetch_add(1, Ordering::Relaxed);
        return Err((60 - now.timestamp() % 60) as u64);
    }
    Ok(budget.used)
}

/// Binance's 429 for a spent weight budget, with `Retry-After` in seconds.
fn over_budget(res: &mut Response, retry_after: u64) {
    res.headers_mut().insert(
        "retry-after",
        retry_after.to_string().parse().expect("header value"),
    );
    binance_error(
        res,
        StatusCode::TOO_MANY_REQUESTS,
        -1003,
        "Too much request weight used.",
    );
}

/// `GET /api/v3/exchangeInfo`: every served symbol as spot `TRADING`, plus the listed ones with
/// their status, less the delisted, in Binance's shape.
struct ExchangeInfo {
    state: Arc<State>,
}

#[async_trait]
impl Handler for ExchangeInfo {
    async fn handle(&self, _: &mut Request, _: &mut Depot, res: &mut Response, _: &mut FlowCtrl) {
        let used = match charge(&self.state, EXCHANGE_INFO_WEIGHT) {
            Ok(used) => used,
            Err(retry_after) => return over_budget(res, retry_after),
        };
        res.headers_mut().insert(
            "x-mbx-used-weight-1m",
            used.to_string().parse().expect("header value"),
        );
        let unlisted = lock(&self.state.unlisted).clone();
        let mut symbols: std::collections::BTreeMap<String, String> = lock(&self.state.series)
            .keys()
            .map(|(symbol, _)| (symbol.to_string(), "TRADING".to_owned()))
            .collect();
        symbols.extend(lock(&self.state.listed).clone());
        let symbols: Vec<serde_json::Value> = symbols
            .into_iter()
            .filter(|(symbol, _)| !unlisted.contains(symbol))
            .map(|(symbol, status)| {
                let quote = ["USDT", "BTC", "ETH", "BNB"]
                    .into_iter()
                    .find(|q| symbol.ends_with(q) && symbol.len() > q.len())
                    .unwrap_or("USDT");
                serde_json::json!({
                    "symbol": symbol,
                    "status": status,
                    "baseAsset": &symbol[..symbol.len() - quote.len()],
                    "quoteAsset": quote,
                    "isSpotTradingAllowed": true,
                    "isMarginTradingAllowed": false,
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                })
            })
            .collect();
        res.render(Text::Json(
            serde_json::json!({
                "timezone": "UTC",
                "serverTime": chrono::Utc::now().timestamp_millis(),
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
                "exchangeFilters": [],
                "symbols": symbols,
            })
            .to_string(),
        ));
    }
}

fn binance_error(res: &mut Response, status: StatusCode, code: i32, msg: &str) {
    res.status_code(status);
    res.render(Text::Json(format!(r#"{{"code":{code},"msg":"{msg}"}}"#)));
}

#[async_trait]
impl Handler for Klines {
    async fn handle(&self, req: &mut Request, _: &mut Depot, res: &mut Response, _: &mut FlowCtrl) {
        let latency = *lock(&self.state.latency);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let weight = match charge(&self.state, KLINES_WEIGHT) {
            Ok(weight) => weight,
            Err(retry_after) => return over_budget(res, retry_after),
        };
        res.headers_mut().insert(
            "x-mbx-used-weight-1m",
            weight.to_string().parse().expect("header value"),
        );
        let request = KlinesRequest {
            symbol: req.query::<String>("symbol").unwrap_or_default(),
            interval: req.query::<String>("interval").unwrap_or_default(),
            start_time: req.query::<i64>("startTime"),
            end_time: req.query::<i64>("endTime"),
            limit: req.query::<usize>("limit").unwrap_or(500),
        };
        lock(&self.state.requests).push(request.clone());

        let fault = lock(&self.state.faults).pop_front();
        match &fault {
            Some(Fault::RateLimited { retry_after_secs }) => {
                res.headers_mut().insert(
                    "retry-after",
                    retry_after_secs.to_string().parse().expect("header value"),
                );
                return binance_error(
                    res,
                    StatusCode::TOO_MANY_REQUESTS,
                    -1003,
                    "Too many requests; current limit of IP is 6000 request weight per 1 MINUTE.",
                );
            }
            Some(Fault::Banned) => {
                res.headers_mut()
                    .insert("retry-after", "120".parse().expect("header value"));
                return binance_error(
                    res,
                    StatusCode::IM_A_TEAPOT,
                    -1003,
                    "Way too many requests; IP banned until 1700000000000.",
                );
            }
            Some(Fault::ServerError) => {
                return binance_error(
                    res,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    -1000,
                    "An unknown error occurred while processing the request.",
                );
            }
            Some(Fault::Slow(delay)) => tokio::time::sleep(*delay).await,
            Some(Fault::Malformed) => {
                res.render(Text::Json(r#"[[1499040000000,"0.0163","#));
                return;
            }
            _ => {}
        }

        if request.limit == 0 || request.limit > 1000 {
            return binance_error(
                res,
                StatusCode::BAD_REQUEST,
                -1130,
                "Data sent for parameter 'limit' is not valid.",
            );
        }
        let Ok(interval) = request.interval.parse::<Interval>() else {
            return binance_error(res, StatusCode::BAD_REQUEST, -1120, "Invalid interval.");
        };
        let series = request
            .symbol
            .parse::<Symbol>()
            .ok()
            .and_then(|symbol| lock(&self.state.series).get(&(symbol, interval)).cloned());
        let Some(series) = series else {
            return binance_error(res, StatusCode::BAD_REQUEST, -1121, "Invalid symbol.");
        };
        let mut page = select(&series, &request);
        if let Some(fault) = fault {
            corrupt(&mut page, &fault);
        }
        self.state
            .served
            .fetch_add(page.len() as u64, Ordering::Relaxed);
        let body = kline::render_page(&page);
        res.headers_mut().insert(
            "content-type",
            "application/json;charset=UTF-8"
                .parse()
                .expect("header value"),
        );
        res.body(body);
    }
}

struct ArchiveFile {
    state: Arc<State>,
}

#[async_trait]
impl Handler for ArchiveFile {
    async fn handle(&self, req: &mut Request, _: &mut Depot, res: &mut Response, _: &mut FlowCtrl) {
        let file = req.param::<String>("file").unwrap_or_default();
        lock(&self.state.archive_downloads).push(file.clone());
        let symbol = req.param::<String>("symbol").unwrap_or_default();
        let interval = req.param::<String>("interval").unwrap_or_default();
        let (zip_name, checksum) = match file.strip_suffix(".CHECKSUM") {
            Some(zip_name) => (zip_name.to_owned(), true),
            None => (file.clone(), false),
        };
        let month = zip_name
            .strip_prefix(&format!("{symbol}-{interval}-"))
            .and_then(|rest| rest.strip_suffix(".zip"))
            .and_then(|ym| ym.split_once('-'))
            .and_then(|(y, m)| {
                Some(Month {
                    year: y.parse().ok()?,
                    month: m.parse().ok().filter(|m| (1..=12).contains(m))?,
                })
            });
        let series = match (symbol.parse::<Symbol>(), interval.parse::<Interval>()) {
            (Ok(symbol), Ok(interval)) => {
                lock(&self.state.series).get(&(symbol, interval)).cloned()
            }
            _ => None,
        };
        let (Some(month), Some(series)) = (month, series) else {
            return not_found(res);
        };
        let (start, end) = (month.start_ms(), month.next().start_ms());
        let from = series.partition_point(|c| c.open_time.timestamp_millis() < start);
        let to = series.partition_point(|c| c.open_time.timestamp_millis() < end);
        if from == to || lock(&self.state.unpublished).contains(&month) {
            return not_found(res);
        }
        let csv_name = zip_name.replace(".zip", ".csv");
        let zipped = archive_zip(
            &csv_name,
            &series[from..to],
            month >= ARCHIVE_MICROSECONDS_FROM,
        );
        if checksum {
            let mut digest = format!("{:x}", Sha256::digest(&zipped));
            if lock(&self.state.corrupted).contains(&month) {
                digest = format!("{:x}", Sha256::digest(b"something else"));
            }
            res.render(Text::Plain(format!("{digest}  {zip_name}\n")));
        } else {
            res.headers_mut().insert(
                "content-type",
                "application/zip".parse().expect("header value"),
            );
            res.body(zipped);
        }
    }
}

fn not_found(res: &mut Response) {
    res.status_code(StatusCode::NOT_FOUND);
    res.render(Text::Plain("<Error><Code>NoSuchKey</Code></Error>"));
}

/// A monthly archive file: one CSV of kline rows without header, as Binance publishes them.
fn archive_zip(csv_name: &str, candles: &[Candle], microseconds: bool) -> Vec<u8> {
    let time = |t: i64| {
        if microseconds {
            t * 1000 + 999 * i64::from(t % 1000 == 999)
        } else {
            t
        }
    };
    let mut csv = String::new();
    for c in candles {
        let optional = |d: Option<Decimal>| d.map(|d| d.to_string()).unwrap_or_default();
        csv.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},0\n",
            time(c.open_time.timestamp_millis()),
            c.open,
            c.high,
            c.low,
            c.close,
            c.volume,
            time(c.close_time.timestamp_millis()),
            optional(c.quote_volume),
            c.trades.unwrap_or_default(),
            optional(c.taker_buy_base),
            optional(c.taker_buy_quote),
        ));
    }
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    writer
        .start_file(csv_name, zip::write::SimpleFileOptions::default())
        .expect("zip entry");
    writer.write_all(csv.as_bytes()).expect("zip write");
    writer.finish().expect("zip finish").into_inner()
}

/// Binance's selection rules: `startTime`/`endTime` bound open times; without `startTime` the
/// newest `limit` candles (up to `endTime`) are returned.
fn select(series: &[Candle], request: &KlinesRequest) -> Vec<Candle> {
    let end = request.end_time.unwrap_or(i64::MAX);
    let upto = series.partition_point(|c| c.open_time.timestamp_millis() <= end);
    let from = match request.start_time {
        Some(start) => series[..upto].partition_point(|c| c.open_time.timestamp_millis() < start),
        None => upto.saturating_sub(request.limit),
    };
    series[from..upto]
        .iter()
        .take(request.limit)
        .cloned()
        .collect()
}

fn corrupt(page: &mut Vec<Candle>, fault: &Fault) {
    match *fault {
        Fault::HighBelowLow(i) if i < page.len() => {
            let c = &mut page[i];
            std::mem::swap(&mut c.high, &mut c.low);
            if c.high == c.low {
                c.low += Decimal::ONE;
            }
        }
        Fault::ZeroPrice(i) if i < page.len() => page[i].close = Decimal::ZERO,
        Fault::Misaligned(i) if i < page.len() => {
            page[i].open_time += chrono::Duration::seconds(1);
        }
        Fault::Duplicate(i) if i < page.len() => {
            let copy = page[i].clone();
            page.insert(i, copy);
        }
        Fault::OutOfOrder(i) if i + 1 < page.len() => page.swap(i, i + 1),
        _ => {}
    }
}

/// A synthetic series of `count` candles of `interval` ending before now, whose closes follow
/// the real hourly returns of the bundled BTCUSDT history (cycled), for volume tests.
pub fn synthetic_series(symbol: &str, interval: Interval, count: usize) -> Vec<Candle> {
    let symbol: Symbol = symbol.parse().expect("symbol");
    let btc: Symbol = "BTCUSDT".parse().expect("symbol");
    let real = replay::bundled_candles(&btc).expect("bundled history");
    let returns: Vec<Decimal> = real.windows(2).map(|w| w[1].close / w[0].close).collect();
    let step = interval.duration_ms();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let first_open = interval.floor(now_ms) - step * (count as i64 + 1);
    let mut close = real[0].close;
    (0..count)
        .map(|i| {
            let open = close;
            close = (open * returns[i % returns.len()])
                .round_dp(2)
                .max(Decimal::ONE);
            let (high, low) = if open > close {
                (open, close)
            } else {
                (close, open)
            };
            let open_ms = first_open + step * i as i64;
            as_exchange_candle(Candle {
                symbol: symbol.clone(),
                interval,
                open_time: chrono::DateTime::from_timestamp_millis(open_ms).expect("time"),
                open,
                high: high + Decimal::ONE,
                low: (low - Decimal::ONE).max(Decimal::new(1, 2)),
                close,
                volume: real[i % real.len()].volume,
                quote_volume: None,
                trades: None,
                taker_buy_base: None,
                taker_buy_quote: None,
                close_time: chrono::DateTime::from_timestamp_millis(open_ms + step - 1)
                    .expect("time"),
                source: "binance".into(),
            })
        })
        .collect()
}
