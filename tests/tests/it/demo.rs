//! `pricecast demo`: the bundled history through the collect job, and the API answering every
//! example the demo prints.

use chrono::Utc;
use pricecast_jobs::demo;
use pricecast_shared::store::{AccessMode, Store, StoreOptions};
use pricecast_tests::api::{Reply, TestApp};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn demo_loads_the_history_and_every_printed_example_returns_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = demo::load(dir.path(), CancellationToken::new())
        .await
        .expect("demo load");
    assert!(
        data.detail
            .contains("BTCUSDT 1h: 26279 fetched, 26279 written"),
        "{}",
        data.detail
    );
    assert!(
        data.detail.contains("0 gaps open, 1 known exchange gaps"),
        "{}",
        data.detail
    );

    assert!(
        data.export_detail
            .contains("BTCUSDT 1h: 1096 partitions, 26279 rows"),
        "{}",
        data.export_detail
    );
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        let series = data
            .lake_dir
            .join(format!("candles/symbol={symbol}/interval=1h"));
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(series.join("_manifest.json")).expect("manifest"),
        )
        .expect("manifest JSON");
        assert_eq!(manifest["rows"], 26_279, "{symbol}");
        let partitions = manifest["partitions"].as_array().expect("partitions");
        let files = std::fs::read_dir(&series)
            .expect("series folder")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("part-0.parquet").is_file())
            .count();
        assert_eq!(files, partitions.len(), "{symbol}: one file per listed day");
    }

    assert!(
        data.features_detail
            .contains("BTCUSDT 1h: 1096 feature partitions"),
        "{}",
        data.features_detail
    );
    // On the bundled history the linear model does not beat the naive forecast on the most
    // recent window: it stays challenger and a naive model (version 2) is champion.
    assert!(
        data.train_detail
            .contains("pricecast-BTCUSDT-1h v1 (naive_champion)"),
        "{}",
        data.train_detail
    );

    let again = demo::load(dir.path(), CancellationToken::new())
        .await
        .expect("second demo load");
    assert!(
        again
            .detail
            .contains("BTCUSDT 1h: 26279 fetched, 0 written"),
        "{}",
        again.detail
    );

    let store = Store::connect(
        &data.database_url,
        StoreOptions {
            mode: AccessMode::ReadOnly,
            max_connections: 2,
        },
    )
    .await
    .expect("read-only store");
    let mut app = TestApp::start(demo::app_state(&data, store).await).await;
    let client = app.client.clone();
    let examples = demo::examples(&app.base, &data, Utc::now());
    let mut checked = 0;
    for example in &examples {
        let (request, url) = if let Some(post) = example.strip_prefix("curl -X POST ") {
            let url = post.split_whitespace().next().expect("POST url");
            let body = post
                .split_once("-d '")
                .and_then(|(_, body)| body.strip_suffix('\''))
                .expect("POST body");
            let request = client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_owned());
            (request, url)
        } else if let Some(rest) = example
            .strip_prefix("curl ")
            .or_else(|| example.strip_prefix("open "))
        {
            let url = rest
                .split("   #")
                .next()
                .expect("url")
                .trim()
                .trim_matches('\'');
            (client.get(url), url)
        } else {
            continue;
        };
        let Reply {
            status,
            content_type,
            text: body,
            ..
        } = app.send(request).await;
        assert!(
            (200..300).contains(&status),
            "{example} answered {status}: {body}"
        );
        if url.contains("/price/history") {
            let rows: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            assert!(
                rows.as_array().is_some_and(|rows| !rows.is_empty()),
                "{example} returned no rows: {body}"
            );
        }
        if url.contains("/price/candles") {
            assert!(
                !body.contains("\"count\":0"),
                "{example} returned no rows: {body}"
            );
        }
        if url.contains("/price/predict") {
            let forecast: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            assert!(
                forecast["predicted_price"]
                    .as_f64()
                    .is_some_and(f64::is_finite),
                "{body}"
            );
            assert_eq!(forecast["model"]["alias"], "champion", "{body}");
        }
        if url.contains("/price/chart.svg") {
            assert!(content_type.starts_with("image/svg+xml"), "{content_type}");
            assert!(body.contains("<svg") && body.contains("forecast"), "{body}");
        }
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} examples were checked");
    app.shutdown.cancel();
    let server = app.server.take().expect("server");
    server.wait().await.expect("server stops");
}
