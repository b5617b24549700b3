//! The lake: Parquet files on S3 (or MinIO and any S3-compatible store), Google Cloud Storage,
//! Azure Blob Storage or a local folder, opened from one URL with object_store.
//!
//! | variable | flag | default |
//! |---|---|---|
//! | `LAKE_URL` | `--lake-url` | `file://./pricecast-data/lake` (relative to the working directory) |
//! | `AWS_ENDPOINT_URL` | `--aws-endpoint-url` | unset: AWS itself; set for MinIO and other S3-compatible stores |
//! | `MLFLOW_S3_ENDPOINT_URL` | `--mlflow-s3-endpoint-url` | unset; used when `AWS_ENDPOINT_URL` is not set |
//! | `AWS_ACCESS_KEY_ID` | `--aws-access-key-id` | unset: the AWS credential chain (web identity, instance profile) |
//! | `AWS_SECRET_ACCESS_KEY` | `--aws-secret-access-key` | unset; a secret, never printed |
//! | `AWS_REGION` | `--aws-region` | `us-east-1` |
//! | | `--create-bucket` | off: a missing bucket is an error |
//!
//! `s3://bucket/prefix` talks path-style (`endpoint/bucket/key`), which MinIO, moto and AWS all
//! accept. `gs://` and `az://` are configured by object_store's own variables
//! (`GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, …). `memory://` is for tests.
//!
//! Every object is written whole or not at all: a single PUT, or a multipart upload that only
//! becomes visible when completed (a local folder writes a temporary file and renames it).

pub mod candles;
pub mod manifest;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ClientOptions, ObjectMeta, ObjectStore, ObjectStoreExt, RetryConfig};
use parquet::arrow::AsyncArrowWriter;
use parquet::file::properties::WriterProperties;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use arrow::array::RecordBatch;

use crate::error::{Error, Result};
use crate::settings::parse_http_url;

/// The embedded default lake, beside the embedded default database.
pub const DEFAULT_LAKE_URL: &str = "file://./pricecast-data/lake";
/// Region used when `AWS_REGION` is unset (MinIO and moto accept any).
pub const DEFAULT_AWS_REGION: &str = "us-east-1";
/// Bytes buffered before an upload turns multipart, and the size of each part: S3 needs at
/// least 5 MiB per part, and a day of 1m candles (~100 KB) fits a single PUT.
pub const DEFAULT_UPLOAD_PART_BYTES: usize = 10 * 1024 * 1024;
/// Retries of one S3 request: enough for a throttled or restarting server, short enough that a
/// wrong endpoint fails in seconds rather than object_store's default three minutes.
const MAX_RETRIES: usize = 3;
const RETRY_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the lake is: a validated `LAKE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum LakeUrl {
    /// `file:///abs/path` or `file://./relative/path` (resolved against the working directory).
    Local(PathBuf),
    /// `memory://`: an in-process store, for tests.
    Memory,
    /// `s3://bucket/prefix` (also `s3a://`).
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix inside the bucket, without slashes at either end.
        prefix: String,
    },
    /// Any other store object_store opens from a URL (`gs://`, `az://`, `abfss://`, …).
    Other(Url),
}

impl FromStr for LakeUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix("file://") {
            if path.is_empty() {
                return Err(
                    "LAKE_URL: file:// needs a folder, e.g. file:///var/lib/pricecast/lake".into(),
                );
            }
            return Ok(Self::Local(PathBuf::from(path)));
        }
        if s == "memory://" || s == "memory:///" {
            return Ok(Self::Memory);
        }
        let url = Url::parse(s).map_err(|e| format!("LAKE_URL: {s:?} is not a URL ({e})"))?;
        match url.scheme() {
            "s3" | "s3a" => {
                let bucket = url.host_str().unwrap_or_default().to_owned();
                if bucket.is_empty() {
                    return Err(format!(
                        "LAKE_URL: {s:?} names no bucket (s3://bucket/prefix)"
                    ));
                }
                let prefix = url.path().trim_matches('/').to_owned();
                Ok(Self::S3 { bucket, prefix })
            }
            "gs" | "az" | "adl" | "azure" | "abfs" | "abfss" => Ok(Self::Other(url)),
            other => Err(format!(
                "LAKE_URL: scheme {other}:// is not supported; use s3://bucket/prefix, gs://, az://, file:///path or memory://"
            )),
        }
    }
}

impl fmt::Display for LakeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(path) => write!(f, "file://{}", path.display()),
            Self::Memory => f.write_str("memory://"),
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Self::Other(url) => f.write_str(url.as_str()),
        }
    }
}

impl fmt::Debug for LakeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LakeUrl({self})")
    }
}

fn parse_lake_url(s: &str) -> Result<LakeUrl, String> {
    s.parse()
}

/// Lake settings: the URL, and S3 access for `s3://` lakes.
#[derive(clap::Args, Clone, Debug)]
pub struct LakeArgs {
    /// Lake location: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix,
    /// file:///path or memory://.
    #[arg(
        long,
        env = "LAKE_URL",
        value_name = "LAKE_URL",
        default_value = DEFAULT_LAKE_URL,
        value_parser = parse_lake_url
    )]
    pub lake_url: LakeUrl,

    /// S3 endpoint for MinIO and other S3-compatible stores (http://minio:9000).
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "AWS_ENDPOINT_URL", value_parser = parse_http_url("AWS_ENDPOINT_URL"))]
    pub aws_endpoint_url: Option<Url>,

    /// The seed app's name for the S3 endpoint; used when AWS_ENDPOINT_URL is not set.
    #[arg(
        long,
        env = "MLFLOW_S3_ENDPOINT_URL",
        value_name = "MLFLOW_S3_ENDPOINT_URL",
        value_parser = parse_http_url("MLFLOW_S3_ENDPOINT_URL")
    )]
    pub mlflow_s3_endpoint_url: Option<Url>,

    /// S3 access key id; unset uses the AWS credential chain (web identity, instance profile).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", value_name = "AWS_ACCESS_KEY_ID")]
    pub aws_access_key_id: Option<String>,

    /// S3 secret access key (never printed).
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        value_name = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub aws_secret_access_key: Option<SecretString>,

    /// S3 region.
    #[arg(long, env = "AWS_REGION", value_name = "AWS_REGION", default_value = DEFAULT_AWS_REGION)]
    pub aws_region: String,

    /// Create the bucket when it does not exist (S3 only) instead of failing.
    #[arg(long)]
    pub create_bucket: bool,
}

impl LakeArgs {
    /// Settings for a lake at `url` with no S3 options (local folders, memory, tests).
    pub fn for_url(url: LakeUrl) -> Self {
        Self {
            lake_url: url,
            aws_endpoint_url: None,
            mlflow_s3_endpoint_url: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            aws_region: DEFAULT_AWS_REGION.to_owned(),
            create_bucket: false,
        }
    }

    /// The S3 endpoint: `AWS_ENDPOINT_URL`, else `MLFLOW_S3_ENDPOINT_URL`.
    pub fn endpoint(&self) -> Option<&Url> {
        self.aws_endpoint_url
            .as_ref()
            .or(self.mlflow_s3_endpoint_url.as_ref())
    }
}

/// An opened lake: an object store and the prefix inside it that everything is written under.
#[derive(Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    root: Path,
    url: String,
    upload_part_bytes: usize,
}

impl fmt::Debug for Lake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lake").field("url", &self.url).finish()
    }
}

impl Lake {
    /// Opens the lake the settings describe and checks that it can be used: a local folder is
    /// created, an S3 bucket must exist (or is created with `--create-bucket`), and the
    /// endpoint and credentials must be accepted. Errors say which of these is wrong.
    pub async fn open(args: &LakeArgs) -> Result<Self> {
        let url = args.lake_url.to_string();
        let lake = match &args.lake_url {
            LakeUrl::Local(path) => {
                let path = std::path::absolute(path)?;
                std::fs::create_dir_all(&path).map_err(|e| Error::LakeUnavailable {
                    url: url.clone(),
                    reason: format!("cannot create folder {}: {e}", path.display()),
                })?;
                let store =
                    LocalFileSystem::new_with_prefix(&path).map_err(|source| Error::Lake {
                        operation: format!("open of {}", path.display()),
                        source,
                    })?;
                Self::from_store(Arc::new(store), "", url)
            }
            LakeUrl::Memory => Self::in_memory(),
            LakeUrl::S3 { bucket, prefix } => {
                let store = s3_store(args, bucket).map_err(|source| Error::LakeUnavailable {
                    url: url.clone(),
                    reason: format!("invalid S3 settings: {source}"),
                })?;
                let lake = Self::from_store(Arc::new(store), prefix, url);
                match lake.check().await {
                    Err(Error::LakeUnavailable { reason, .. })
                        if args.create_bucket && reason.starts_with(NO_SUCH_BUCKET) =>
                    {
                        create_bucket(args, bucket).await.map_err(|reason| {
                            Error::LakeUnavailable {
                                url: lake.url.clone(),
                                reason,
                            }
                        })?;
                        tracing::info!(lake = %lake.url, "bucket created");
                        lake.check().await?;
                    }
                    other => other?,
                }
                lake
            }
            LakeUrl::Other(other) => {
                let options = std::env::vars().map(|(k, v)| (k.to_ascii_lowercase(), v));
                let (store, root) =
                    object_store::parse_url_opts(other, options).map_err(|source| {
                        Error::LakeUnavailable {
                            url: url.clone(),
                            reason: format!("cannot open: {source}"),
                        }
                    })?;
                let lake = Self::from_store(Arc::from(store), root.as_ref(), url);
                lake.check().await?;
                lake
            }
        };
        Ok(lake)
    }

    /// A lake over any object store (tests wrap stores to inject failures), rooted at `root`.
    pub fn from_store(store: Arc<dyn ObjectStore>, root: &str, url: impl Into<String>) -> Self {
        Self {
            store,
            root: Path::from(root.trim_matches('/')),
            url: url.into(),
            upload_part_bytes: DEFAULT_UPLOAD_PART_BYTES,
        }
    }

    /// An empty in-process lake.
    pub fn in_memory() -> Self {
        Self::from_store(Arc::new(InMemory::new()), "", "memory://")
    }

    /// Uses parts of `bytes` for multipart uploads (and buffers that much before going
    /// multipart). S3 refuses parts under 5 MiB except the last.
    pub fn with_upload_part_bytes(mut self, bytes: usize) -> Self {
        self.upload_part_bytes = bytes.max(1);
        self
    }

    /// The lake URL, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object store underneath.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The full location of a lake-relative path (`candles/symbol=…/part-0.parquet`).
    pub fn path(&self, relative: &str) -> Path {
        let relative = Path::from(relative);
        if self.root.as_ref().is_empty() {
            relative
        } else {
            self.root.parts().chain(relative.parts()).collect()
        }
    }

    /// The lake-relative form of a full location.
    pub fn relative<'a>(&self, location: &'a Path) -> &'a str {
        let full = location.as_ref();
        let root = self.root.as_ref();
        if root.is_empty() {
            full
        } else {
            full.strip_prefix(root)
                .map_or(full, |rest| rest.trim_start_matches('/'))
        }
    }

    /// Checks that the store answers: one listing under the root.
    pub async fn check(&self) -> Result<()> {
        match self.store.list_with_delimiter(Some(&self.root)).await {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::LakeUnavailable {
                url: self.url.clone(),
                reason: explain_store_error(&e),
            }),
        }
    }

    /// The symbols that have a folder under `dir` (`candles`, `features`): `dir/symbol=S/`.
    pub async fn symbols_under(&self, dir: &str) -> Result<Vec<crate::domain::Symbol>> {
        let location = self.path(dir);
        let listing = self
            .store
            .list_with_delimiter(Some(&location))
            .await
            .map_err(|source| Error::Lake {
                operation: format!("listing of {location}"),
                source,
            })?;
        let mut symbols: Vec<crate::domain::Symbol> = listing
            .common_prefixes
            .iter()
            .filter_map(|prefix| prefix.filename())
            .filter_map(|name| name.strip_prefix("symbol="))
            .filter_map(|symbol| symbol.parse().ok())
            .collect();
        symbols.sort();
        Ok(symbols)
    }

    /// An object's bytes, `None` when it does not exist.
    pub async fn get(&self, relative: &str) -> Result<Option<Bytes>> {
        let location = self.path(relative);
        let fetched = match self.store.get(&location).await {
            Ok(result) => result.bytes().await,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => Err(e),
        };
        fetched.map(Some).map_err(|source| Error::Lake {
            operation: format!("read of {location}"),
            source,
        })
    }

    /// Writes a small object in one PUT (atomic).
    pub async fn put(&self, relative: &str, bytes: Bytes) -> Result<()> {
        let location = self.path(relative);
        self.store
            .put(&location, bytes.into())
            .await
            .map(|_| ())
            .map_err(|source| Error::Lake {
                operation: format!("write of {location}"),
                source,
            })
    }

    /// Every object under a lake-relative prefix.
    pub async fn list(&self, relative_prefix: &str) -> Result<Vec<ObjectMeta>> {
        let prefix = self.path(relative_prefix);
        self.store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|source| Error::Lake {
                operation: format!("listing of {prefix}"),
                source,
            })
    }

    /// Streams `batches` into a Parquet object at `relative`: encoded batch by batch and
    /// uploaded in parts once past the part size, so the file is never whole in memory. The
    /// object appears only when complete; on any failure the upload is aborted and the previous
    /// object, if any, stays as it was. Returns the size written.
    pub async fn write_parquet(
        &self,
        relative: &str,
        batches: &[RecordBatch],
        properties: WriterProperties,
    ) -> Result<u64> {
        let Some(first) = batches.first() else {
            return Err(Error::config("nothing to write: no record batches"));
        };
        let location = self.path(relative);
        let upload =
            BufWriter::with_capacity(self.store.clone(), location.clone(), self.upload_part_bytes);
        let mut writer = AsyncArrowWriter::try_new(upload, first.schema(), Some(properties))?;
        let failed = |e: parquet::errors::ParquetError| {
            Error::Parquet(parquet::errors::ParquetError::General(format!(
                "writing {location}: {e}"
            )))
        };
        for batch in batches {
            if let Err(e) = writer.write(batch).await {
                // Parts already sent belong to an upload that never completes: abort it.
                if let Err(abort) = writer.into_inner().abort().await {
                    tracing::warn!(location = %location, error.message = %abort, "could not abort the failed upload");
                }
                return Err(failed(e));
            }
        }
        // A failed finish aborts its own multipart upload.
        writer.finish().await.map_err(failed)?;
        Ok(writer.bytes_written() as u64)
    }
}

/// The start of the reason given for a missing bucket (`--create-bucket` looks for it).
const NO_SUCH_BUCKET: &str = "the bucket does not exist";

/// Turns an object store failure into advice: which setting is probably wrong.
fn explain_store_error(error: &object_store::Error) -> String {
    let text = crate::telemetry::error_chain(error);
    let has = |needle: &str| text.contains(needle);
    if has("NoSuchBucket") || has("bucket does not exist") {
        format!("{NO_SUCH_BUCKET}; create it, or pass --create-bucket ({text})")
    } else if has("InvalidAccessKeyId")
        || has("SignatureDoesNotMatch")
        || has("AccessDenied")
        || has("403 Forbidden")
    {
        format!(
            "the credentials were refused; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({text})"
        )
    } else if has("error sending request")
        || has("connect")
        || has("dns")
        || has("timed out")
        || has("Connection refused")
    {
        format!(
            "the endpoint does not answer; check AWS_ENDPOINT_URL (or MLFLOW_S3_ENDPOINT_URL) ({text})"
        )
    } else {
        text
    }
}

fn s3_store(args: &LakeArgs, bucket: &str) -> object_store::Result<object_store::aws::AmazonS3> {
    let retry = RetryConfig {
        max_retries: MAX_RETRIES,
        retry_timeout: RETRY_TIMEOUT,
        ..RetryConfig::default()
    };
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(&args.aws_region)
        .with_virtual_hosted_style_request(false)
        .with_retry(retry)
        .with_client_options(ClientOptions::new().with_connect_timeout(CONNECT_TIMEOUT));
    if let Some(endpoint) = args.endpoint() {
        builder = builder
            .with_endpoint(endpoint.as_str().trim_end_matches('/'))
            .with_allow_http(endpoint.scheme() == "http");
    }
    if let Some(key) = &args.aws_access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &args.aws_secret_access_key {
        builder = builder.with_secret_access_key(secret.expose_secret());
    }
    builder.build()
}

/// Creates an S3 bucket with a signed `PUT /bucket` (object_store has no bucket API).
async fn create_bucket(args: &LakeArgs, bucket: &str) -> Result<(), String> {
    use object_store::aws::{AwsAuthorizer, AwsCredential};
    let (Some(key_id), Some(secret)) = (&args.aws_access_key_id, &args.aws_secret_access_key)
    else {
        return Err("--create-bucket needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned());
    };
    let endpoint = args.endpoint().map_or_else(
        || format!("https://s3.{}.amazonaws.com", args.aws_region),
        |e| e.as_str().trim_end_matches('/').to_owned(),
    );
    let url = format!("{endpoint}/{bucket}");
    let body = if args.aws_region == DEFAULT_AWS_REGION {
        String::new()
    } else {
        format!(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
            args.aws_region
        )
    };
    let mut request = http::Request::builder()
        .method(http::Method::PUT)
        .uri(&url)
        .body(object_store::client::HttpRequestBody::from(body.clone()))
        .map_err(|e| format!("cannot build the create-bucket request for {url}: {e}"))?;
    let credential = AwsCredential {
        key_id: key_id.clone(),
        secret_key: secret.expose_secret().to_owned(),
        token: None,
    };
    AwsAuthorizer::new(&credential, "s3", &args.aws_region)
        .try_authorize(&mut request, None)
        .map_err(|e| format!("cannot sign the create-bucket request: {e}"))?;
    let client = reqwest::Client::new();
    let mut send = client.put(&url).body(body);
    for (name, value) in request.headers() {
        send = send.header(name.as_str(), value.as_bytes());
    }
    let response = send
        .send()
        .await
        .map_err(|e| format!("cannot reach {endpoint} to create bucket {bucket}: {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = response.text().await.unwrap_or_default();
        Err(format!(
            "creating bucket {bucket} at {endpoint} was refused with HTTP {status}: {text}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_not_mistaken_for_refused_credentials() {
        // The elapsed time in the message happens to contain "403".
        let refused = object_store::Error::Generic {
            store: "S3",
            source: "Error performing GET http://127.0.0.1:9/b in 460.104037ms, after 3 retries - \
                     HTTP error: error sending request: tcp connect error: Connection refused"
                .into(),
        };
        assert!(explain_store_error(&refused).starts_with("the endpoint does not answer"));
        let forbidden = object_store::Error::Generic {
            store: "S3",
            source: "Client error with status 403 Forbidden: <Error/>".into(),
        };
        assert!(explain_store_error(&forbidden).starts_with("the credentials were refused"));
    }
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        lake: LakeArgs,
    }

    #[test]
    fn lake_urls_parse_and_print() {
        let s3: LakeUrl = "s3://prices/pricecast/lake/".parse().expect("s3");
        assert_eq!(
            s3,
            LakeUrl::S3 {
                bucket: "prices".into(),
                prefix: "pricecast/lake".into()
            }
        );
        assert_eq!(s3.to_string(), "s3://prices/pricecast/lake");
        assert_eq!(
            "file://./pricecast-data/lake".parse::<LakeUrl>(),
            Ok(LakeUrl::Local(PathBuf::from("./pricecast-data/lake")))
        );
        assert_eq!("memory://".parse::<LakeUrl>(), Ok(LakeUrl::Memory));
        assert!(matches!(
            "gs://bucket/lake".parse::<LakeUrl>(),
            Ok(LakeUrl::Other(_))
        ));
        for bad in ["ftp://x/y", "s3:///nobucket", "not a url", "file://"] {
            let err = bad.parse::<LakeUrl>().expect_err(bad);
            assert!(err.contains("LAKE_URL"), "{err}");
        }
    }

    #[test]
    fn endpoint_prefers_aws_and_secrets_never_print() {
        let cli = Cli::try_parse_from([
            "job",
            "--lake-url",
            "s3://b/p",
            "--mlflow-s3-endpoint-url",
            "http://mlflow-minio:9000",
            "--aws-secret-access-key",
            "hunter2",
        ])
        .expect("flags");
        assert_eq!(
            cli.lake.endpoint().map(Url::as_str),
            Some("http://mlflow-minio:9000/")
        );
        assert!(!format!("{cli:?}").contains("hunter2"));
        let cli = Cli::try_parse_from([
            "job",
            "--aws-endpoint-url",
            "http://minio:9000",
            "--mlflow-s3-endpoint-url",
            "http://other:9000",
        ])
        .expect("flags");
        assert_eq!(
            cli.lake.endpoint().map(Url::as_str),
            Some("http://minio:9000/")
        );
        let err = Cli::try_parse_from(["job", "--aws-endpoint-url", "minio:9000"])
            .expect_err("no scheme")
            .to_string();
        assert!(err.contains("AWS_ENDPOINT_URL"), "{err}");
    }

    #[test]
    fn paths_are_joined_under_the_root() {
        let lake = Lake::from_store(Arc::new(InMemory::new()), "/lake/prod/", "memory://");
        let path = lake.path("candles/symbol=BTCUSDT/interval=1m/date=2025-11-23/part-0.parquet");
        assert_eq!(
            path.as_ref(),
            "lake/prod/candles/symbol=BTCUSDT/interval=1m/date=2025-11-23/part-0.parquet"
        );
        assert_eq!(
            lake.relative(&path),
            "candles/symbol=BTCUSDT/interval=1m/date=2025-11-23/part-0.parquet"
        );
        assert_eq!(Lake::in_memory().path("a/b").as_ref(), "a/b");
    }

    #[test]
    fn store_errors_name_the_setting_to_fix() {
        let error = |text: &str| object_store::Error::Generic {
            store: "S3",
            source: text.to_owned().into(),
        };
        assert!(explain_store_error(&error("NoSuchBucket")).starts_with(NO_SUCH_BUCKET));
        assert!(explain_store_error(&error("InvalidAccessKeyId")).contains("AWS_ACCESS_KEY_ID"));
        assert!(
            explain_store_error(&error("error sending request: Connection refused"))
                .contains("AWS_ENDPOINT_URL")
        );
    }
}
