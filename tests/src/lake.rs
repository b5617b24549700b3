//! Lakes for tests: a fresh prefix in the real S3 server the test script started (moto, with
//! credential checks on), a store wrapper that fails uploads on cue, and the independent
//! Python reader (pyarrow + polars).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use pricecast_shared::lake::{Lake, LakeArgs, LakeUrl};

/// Variables the test script exports for the S3 server.
pub const S3_VARIABLES: [&str; 5] = [
    "PRICECAST_TEST_S3_ENDPOINT",
    "PRICECAST_TEST_S3_BUCKET",
    "PRICECAST_TEST_S3_ACCESS_KEY_ID",
    "PRICECAST_TEST_S3_SECRET_ACCESS_KEY",
    "PRICECAST_TEST_PYTHON",
];

fn required(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!(
            "{variable} is not set: the lake tests need the S3 server and Python readers that tests/run.sh starts; run tests/run.sh"
        )
    })
}

/// A fresh prefix in the test bucket of the local S3 server.
#[derive(Clone, Debug)]
pub struct TestS3 {
    /// `http://127.0.0.1:port`.
    pub endpoint: String,
    /// The test bucket.
    pub bucket: String,
    /// This test's own prefix, so tests run in parallel.
    pub prefix: String,
    /// Access key id of the test user.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

impl TestS3 {
    /// A new random prefix. Panics, naming the variable, when the test script did not run.
    pub fn new() -> Self {
        for variable in S3_VARIABLES {
            required(variable);
        }
        Self {
            endpoint: required("PRICECAST_TEST_S3_ENDPOINT"),
            bucket: required("PRICECAST_TEST_S3_BUCKET"),
            prefix: format!("test-{:016x}", rand::random::<u64>()),
            access_key_id: required("PRICECAST_TEST_S3_ACCESS_KEY_ID"),
            secret_access_key: required("PRICECAST_TEST_S3_SECRET_ACCESS_KEY"),
        }
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// Lake settings as production passes them for MinIO: endpoint, keys, region.
    pub fn args(&self) -> LakeArgs {
        let mut args = LakeArgs::for_url(self.url().parse::<LakeUrl>().expect("lake URL"));
        args.aws_endpoint_url = Some(self.endpoint.parse().expect("endpoint"));
        args.aws_access_key_id = Some(self.access_key_id.clone());
        args.aws_secret_access_key = Some(self.secret_access_key.clone().into());
        args
    }

    /// The same settings as environment variables, for the binaries.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LAKE_URL", self.url()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.clone()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ]
    }

    /// Reads the lake under this prefix with pyarrow and polars ([`read_lake`]).
    pub fn read_back(&self) -> serde_json::Value {
        read_lake(
            &[&self.endpoint, &self.bucket, &self.prefix],
            &[
                ("AWS_ACCESS_KEY_ID", self.access_key_id.as_str()),
                ("AWS_SECRET_ACCESS_KEY", self.secret_access_key.as_str()),
            ],
        )
    }
}

impl Default for TestS3 {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `tests/python/read_lake.py` with the test script's Python and returns its JSON:
/// `{"files": {path: {schema, rows, values, …}}, "manifests": {path: manifest}}`.
pub fn read_lake(args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let python = required("PRICECAST_TEST_PYTHON");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/read_lake.py");
    let output = std::process::Command::new(&python)
        .arg(&script)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; run tests/run.sh"));
    assert!(
        output.status.success(),
        "read_lake.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("read_lake.py prints JSON")
}

/// Wraps a store and fails every upload part after the first `parts_allowed` parts, and
/// every single-request PUT of a `.parquet` object when `fail_puts` is set: a network or
/// server failure in the middle of writing a file.
#[derive(Debug)]
pub struct FailingStore {
    inner: Arc<dyn ObjectStore>,
    parts_allowed: usize,
    fail_puts: bool,
    parts_seen: Arc<AtomicUsize>,
}

impl FailingStore {
    /// Fails after `parts_allowed` multipart parts, and parquet PUTs when `fail_puts`.
    pub fn new(inner: Arc<dyn ObjectStore>, parts_allowed: usize, fail_puts: bool) -> Self {
        Self {
            inner,
            parts_allowed,
            fail_puts,
            parts_seen: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Parts uploaded (or refused) so far.
    pub fn parts_seen(&self) -> usize {
        self.parts_seen.load(Ordering::SeqCst)
    }
}

fn injected(operation: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "FailingStore",
        source: format!("injected failure during {operation}").into(),
    }
}

impl fmt::Display for FailingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FailingStore({})", self.inner)
    }
}

#[derive(Debug)]
struct FailingUpload {
    inner: Box<dyn MultipartUpload>,
    parts_allowed: usize,
    parts_seen: Arc<AtomicUsize>,
}

#[async_trait]
impl MultipartUpload for FailingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let seen = self.parts_seen.fetch_add(1, Ordering::SeqCst);
        if seen >= self.parts_allowed {
            return Box::pin(async { Err(injected("an upload part")) });
        }
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl ObjectStore for FailingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if self.fail_puts && location.as_ref().ends_with(".parquet") {
            return Err(injected("a PUT"));
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FailingUpload {
            inner,
            parts_allowed: self.parts_allowed,
            parts_seen: self.parts_seen.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// The etag of every object under `prefix`, by path relative to the lake root: what a test
/// compares to tell which files a run rewrote.
pub async fn etags(lake: &Lake, prefix: &str) -> BTreeMap<String, String> {
    lake.list(prefix)
        .await
        .expect("list")
        .into_iter()
        .map(|meta| {
            (
                lake.relative(&meta.location).to_owned(),
                meta.e_tag.unwrap_or_default(),
            )
        })
        .collect()
}
