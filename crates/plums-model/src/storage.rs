//! Object storage: the options that say how to reach a store ([`StorageOptions`]), the store
//! clients (the `object_store` crate), the runtime they run on, and the few requests a reader
//! makes: one listing of a model's prefix, conditional downloads of its objects.
//!
//! Configuration is what users of S3 tools expect: the `AWS_*` environment variables
//! (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION` or
//! `AWS_DEFAULT_REGION`, `AWS_ALLOW_HTTP`, `AWS_SESSION_TOKEN`, and every other name
//! `object_store` knows), then the explicit options, which win. `gs://` and `az://` take the
//! `GOOGLE_*` and `AZURE_*` variables and options the same way (untested).
//!
//! `object_store` is asynchronous; the core's API is not. Requests run on one multi-threaded
//! tokio runtime owned by this module, created on first use (again in a child process after a
//! `fork`, whose copy of the parent's runtime has no threads), and driven by the calling
//! thread: a caller blocks in [`block_on`]. Called from inside a tokio runtime (where blocking
//! on another one would panic), the request runs on a scoped thread instead. Store clients are
//! kept per (process, bucket, options, environment), so their connection pools are reused.
//!
//! Errors become [`Error::Storage`] with the URL of the object, never a credential: values of
//! secret options are scrubbed from the store's messages.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher as _};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path as StorePath;
use object_store::{
    ClientConfigKey, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, RetryConfig,
    UpdateVersion,
};

use crate::error::{Error, Result, StorageErrorKind};
use crate::location::{ObjectUrl, Scheme};

/// Our own options (not `object_store`'s), in seconds, counts or booleans.
const OWN_KEYS: [(&str, &str); 5] = [
    ("timeout", "seconds a request may take (default 30)"),
    ("connect_timeout", "seconds to connect (default 5)"),
    ("retry_max", "retries of a failed request (default 10)"),
    ("retry_timeout", "seconds a request may be retried for, in all (default 180)"),
    (
        "conditional_writes",
        "true or false: whether saves rely on the store's conditional writes (default true; false lets the last writer win)",
    ),
];

/// How to reach an object store: explicit options, on top of the environment.
///
/// Keys are `object_store`'s names, with or without their `aws_` prefix (`endpoint`,
/// `access_key_id`, `secret_access_key`, `region`, `allow_http`, `session_token`, ...;
/// `google_*` and `azure_*` ones for `gs://` and `az://`), plus `timeout`, `connect_timeout`,
/// `retry_max` and `retry_timeout` (seconds, a count). An explicit option wins over the
/// environment variable of the same meaning. An `http://` endpoint allows plain HTTP unless
/// `allow_http` says otherwise. `Debug` never shows the value of a secret.
///
/// ```
/// use plums_model::StorageOptions;
/// let mut options = StorageOptions::new();
/// options.set("endpoint", "http://127.0.0.1:8333")?.set("aws_secret_access_key", "hunter2")?;
/// options.set_pair("region=us-east-1")?;
/// assert!(!format!("{options:?}").contains("hunter2"));
/// assert!(options.set("endpiont", "x").is_err());
/// # Ok::<(), plums_model::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct StorageOptions {
    /// Canonical key (`s3:aws_endpoint`, `own:timeout`, `gs:...`) -> (key as given, value).
    values: BTreeMap<String, (String, String)>,
    cache_dir: Option<PathBuf>,
    stats: Arc<Counters>,
    /// A store used instead of building one (tests: `object_store`'s in-memory store).
    pub(crate) store: Option<Arc<dyn ObjectStore>>,
}

/// Requests made with one [`StorageOptions`] (and its clones), for tests and progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct StorageStats {
    /// Listing requests (one per listed prefix; pagination not counted).
    pub lists: u64,
    /// Object downloads started (`GET`).
    pub gets: u64,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Objects written (`PUT`, or one multipart upload).
    pub puts: u64,
    /// Bytes uploaded.
    pub bytes_up: u64,
    /// Objects deleted.
    pub deletes: u64,
    /// Objects of models written by saves (their files and `metadata.yaml`; not the writer
    /// lock nor the in-progress marker), and their bytes.
    pub saved_objects: u64,
    /// The bytes of [`StorageStats::saved_objects`].
    pub saved_bytes: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    lists: AtomicU64,
    gets: AtomicU64,
    bytes: AtomicU64,
    puts: AtomicU64,
    pub(crate) bytes_up: AtomicU64,
    deletes: AtomicU64,
    saved_objects: AtomicU64,
    saved_bytes: AtomicU64,
}

impl fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (canonical, (key, value)) in &self.values {
            if is_secret(canonical) {
                map.entry(key, &"<redacted>");
            } else {
                map.entry(key, value);
            }
        }
        if let Some(dir) = &self.cache_dir {
            map.entry(&"cache_dir", dir);
        }
        map.finish()
    }
}

/// Whether the option `canonical` holds a secret (never shown).
fn is_secret(canonical: &str) -> bool {
    ["secret", "token", "password", "key", "sas", "credential"].iter().any(|w| canonical.contains(w))
}

impl StorageOptions {
    /// No explicit option: everything from the environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set option `key` to `value` (see the type's documentation for the keys). An unknown key,
    /// or a value of ours that is not a number, is an [`Error::InvalidStorageOption`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        let given = key.trim();
        let lower = given.to_ascii_lowercase();
        let invalid = |reason: String| Error::InvalidStorageOption { key: given.to_owned(), reason };
        let canonical = if let Some((_, what)) = OWN_KEYS.iter().find(|(k, _)| *k == lower) {
            let ok = if lower == "retry_max" {
                value.trim().parse::<u32>().is_ok()
            } else if lower == "conditional_writes" {
                parse_bool(value).is_some()
            } else {
                value.trim().parse::<f64>().is_ok_and(|s| s.is_finite() && s > 0.0 && s < 1e9)
            };
            if !ok {
                return Err(invalid(format!("expected {what}, got {value:?}")));
            }
            format!("own:{lower}")
        } else if let Ok(k) = AmazonS3ConfigKey::from_str(&lower) {
            format!("s3:{}", k.as_ref())
        } else if let Ok(k) = GoogleConfigKey::from_str(&lower) {
            format!("gs:{}", k.as_ref())
        } else if let Ok(k) = AzureConfigKey::from_str(&lower) {
            format!("az:{}", k.as_ref())
        } else {
            return Err(invalid(
                "unknown key: expected an object_store option (endpoint, access_key_id, secret_access_key, region, allow_http, session_token, ...) or timeout, connect_timeout, retry_max, retry_timeout".to_owned(),
            ));
        };
        self.values.insert(canonical, (given.to_owned(), value.to_owned()));
        Ok(self)
    }

    /// `KEY=VALUE` (as on the command line) split into its key and value.
    pub fn parse_pair(text: &str) -> Result<(String, String)> {
        match text.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
            // Not echoed: a text without `=` may be a secret typed alone.
            _ => Err(Error::InvalidStorageOption {
                key: String::new(),
                reason: format!(
                    "expected KEY=VALUE, got {} characters without a key before \"=\" (not shown: it may be a secret)",
                    text.chars().count()
                ),
            }),
        }
    }

    /// Set the option given as `KEY=VALUE`.
    pub fn set_pair(&mut self, text: &str) -> Result<&mut Self> {
        let (k, v) = Self::parse_pair(text)?;
        self.set(&k, &v)
    }

    /// Keep downloaded files in `dir` instead of the default cache folder (`PMF_CACHE_DIR`, or
    /// the user's cache folder: see [`crate::Cache`]).
    pub fn cache_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// The cache folder set with [`StorageOptions::cache_dir`].
    pub fn cache_dir_option(&self) -> Option<&std::path::Path> {
        self.cache_dir.as_deref()
    }

    /// The requests made with these options (and their clones) so far.
    pub fn stats(&self) -> StorageStats {
        StorageStats {
            lists: self.stats.lists.load(Ordering::Relaxed),
            gets: self.stats.gets.load(Ordering::Relaxed),
            bytes: self.stats.bytes.load(Ordering::Relaxed),
            puts: self.stats.puts.load(Ordering::Relaxed),
            bytes_up: self.stats.bytes_up.load(Ordering::Relaxed),
            deletes: self.stats.deletes.load(Ordering::Relaxed),
            saved_objects: self.stats.saved_objects.load(Ordering::Relaxed),
            saved_bytes: self.stats.saved_bytes.load(Ordering::Relaxed),
        }
    }

    /// Whether saves rely on conditional writes (the `conditional_writes` option, default true).
    pub(crate) fn conditional_writes(&self) -> bool {
        self.own("conditional_writes").and_then(parse_bool).unwrap_or(true)
    }

    /// Whether no option was set explicitly.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty() && self.cache_dir.is_none()
    }

    /// Use `store` instead of building a client (tests).
    #[cfg(test)]
    pub(crate) fn with_store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.store = Some(store);
        self
    }

    fn own(&self, key: &str) -> Option<&str> {
        self.values.get(&format!("own:{key}")).map(|(_, v)| v.trim())
    }

    fn seconds(&self, key: &str) -> Option<Duration> {
        self.own(key).and_then(|v| v.parse::<f64>().ok()).map(Duration::from_secs_f64)
    }

    fn client_options(&self) -> ClientOptions {
        ClientOptions::new()
            .with_timeout(self.seconds("timeout").unwrap_or(Duration::from_secs(30)))
            .with_connect_timeout(self.seconds("connect_timeout").unwrap_or(Duration::from_secs(5)))
    }

    fn retry(&self) -> RetryConfig {
        let mut retry = RetryConfig::default();
        if let Some(n) = self.own("retry_max").and_then(|v| v.parse().ok()) {
            retry.max_retries = n;
        }
        if let Some(t) = self.seconds("retry_timeout") {
            retry.retry_timeout = t;
        }
        retry
    }

    /// The S3 configuration from `env` (variables) then the explicit options (which win).
    fn s3_config(&self, env: impl Iterator<Item = (String, String)>) -> Vec<(AmazonS3ConfigKey, String)> {
        let mut merged: BTreeMap<String, (AmazonS3ConfigKey, String)> = BTreeMap::new();
        let mut metadata_disabled = false;
        for (name, value) in env {
            if name == "AWS_EC2_METADATA_DISABLED" {
                metadata_disabled = matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes");
            }
            if name.starts_with("AWS_") {
                if let Ok(k) = AmazonS3ConfigKey::from_str(&name.to_ascii_lowercase()) {
                    merged.insert(k.as_ref().to_owned(), (k, value));
                }
            }
        }
        for (canonical, (_, value)) in &self.values {
            if let Some(name) = canonical.strip_prefix("s3:") {
                if let Ok(k) = AmazonS3ConfigKey::from_str(name) {
                    merged.insert(name.to_owned(), (k, value.clone()));
                }
            }
        }
        let allow_http = AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp);
        let http_endpoint = merged
            .get(AmazonS3ConfigKey::Endpoint.as_ref())
            .is_some_and(|(_, v)| v.trim().to_ascii_lowercase().starts_with("http://"));
        if http_endpoint && !merged.contains_key(allow_http.as_ref()) {
            merged.insert(allow_http.as_ref().to_owned(), (allow_http, "true".to_owned()));
        }
        // Without credentials, object_store asks the EC2 instance metadata service
        // (169.254.169.254) for some (as the AWS tools do). `AWS_EC2_METADATA_DISABLED=true` (the AWS tools' own
        // switch; the test scripts set it) turns that off: requests are then unsigned, and a store
        // that needs credentials refuses them with a permission error.
        // The same without credentials for a store at an explicit endpoint (MinIO, SeaweedFS,
        // Ceph...): the instance's AWS credentials are not that store's.
        let no_credentials = !merged.contains_key(AmazonS3ConfigKey::AccessKeyId.as_ref());
        let custom_endpoint = merged.contains_key(AmazonS3ConfigKey::Endpoint.as_ref());
        let skip = AmazonS3ConfigKey::SkipSignature;
        if no_credentials && (metadata_disabled || custom_endpoint) && !merged.contains_key(skip.as_ref()) {
            merged.insert(skip.as_ref().to_owned(), (skip, "true".to_owned()));
        }
        merged.into_values().collect()
    }

    /// Scrub the values of secret options (explicit or from the environment) from `text`.
    fn scrub(&self, text: String) -> String {
        let mut out = text;
        let env: Vec<(String, String)> =
            std::env::vars().filter(|(k, _)| is_secret(&k.to_ascii_lowercase()) && is_store_variable(k)).collect();
        let secrets = self.values.iter().filter(|(c, _)| is_secret(c)).map(|(_, (_, v))| v.clone());
        for secret in secrets.chain(env.into_iter().map(|(_, v)| v)) {
            if secret.len() >= 4 {
                out = out.replace(&secret, "<redacted>");
            }
        }
        out
    }
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`), any case.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn is_store_variable(name: &str) -> bool {
    name.starts_with("AWS_") || name.starts_with("GOOGLE_") || name.starts_with("AZURE_")
}

// ---------------------------------------------------------------------------------------------
// The runtime
// ---------------------------------------------------------------------------------------------

/// The runtime of this process (a forked child builds its own).
fn runtime() -> Arc<tokio::runtime::Runtime> {
    static RUNTIME: Mutex<Option<(u32, Arc<tokio::runtime::Runtime>)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    match slot.as_ref() {
        Some((p, rt)) if *p == pid => rt.clone(),
        _ => {
            if let Some(old) = slot.take() {
                // The parent's runtime, copied by fork without its threads: never dropped (its
                // drop would wait for threads that do not exist here).
                std::mem::forget(old);
            }
            let rt = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("pmf-storage")
                    .enable_all()
                    .build()
                    .expect("cannot start the object-storage runtime"),
            );
            *slot = Some((pid, rt.clone()));
            rt
        }
    }
}

/// Run `future` to completion on the storage runtime, blocking the calling thread.
pub(crate) fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    let rt = runtime();
    if tokio::runtime::Handle::try_current().is_ok() {
        // Blocking inside a runtime would panic: block a thread of our own instead.
        std::thread::scope(|s| s.spawn(|| rt.block_on(future)).join().expect("storage request panicked"))
    } else {
        rt.block_on(future)
    }
}

// ---------------------------------------------------------------------------------------------
// Stores
// ---------------------------------------------------------------------------------------------

/// The client of the store `url` is in, with `options` over the environment.
pub(crate) fn store(url: &ObjectUrl, options: &StorageOptions) -> Result<Arc<dyn ObjectStore>> {
    if let Some(s) = &options.store {
        return Ok(s.clone());
    }
    static STORES: OnceLock<Mutex<HashMap<u64, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut env: Vec<(String, String)> = std::env::vars().filter(|(k, _)| is_store_variable(k)).collect();
    env.sort();
    let mut h = DefaultHasher::new();
    (std::process::id(), url.store_url(), &options.values, &env).hash(&mut h);
    let id = h.finish();
    let stores = STORES.get_or_init(Default::default);
    if let Some(s) = stores.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
        return Ok(s.clone());
    }
    let built = build_store(url, options, env.into_iter()).map_err(|e| {
        let mut error = storage_error(options, &url.store_url(), "cannot configure the object store", e);
        if let Error::Storage { kind, .. } = &mut error {
            *kind = StorageErrorKind::Configuration;
        }
        error
    })?;
    stores.lock().unwrap_or_else(|e| e.into_inner()).insert(id, built.clone());
    Ok(built)
}

fn build_store(
    url: &ObjectUrl,
    options: &StorageOptions,
    env: impl Iterator<Item = (String, String)>,
) -> object_store::Result<Arc<dyn ObjectStore>> {
    let env: Vec<(String, String)> = env.collect();
    Ok(match url.kind() {
        Scheme::S3 => {
            let mut b = AmazonS3Builder::new()
                .with_client_options(options.client_options())
                .with_retry(options.retry())
                .with_bucket_name(url.bucket());
            for (k, v) in options.s3_config(env.into_iter()) {
                b = b.with_config(k, v);
            }
            Arc::new(b.with_bucket_name(url.bucket()).build()?)
        }
        Scheme::Gs => {
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_client_options(options.client_options())
                .with_retry(options.retry());
            for (canonical, (_, v)) in &options.values {
                if let Some(k) = canonical.strip_prefix("gs:").and_then(|n| GoogleConfigKey::from_str(n).ok()) {
                    b = b.with_config(k, v);
                }
            }
            Arc::new(b.with_bucket_name(url.bucket()).build()?)
        }
        Scheme::Az => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_client_options(options.client_options())
                .with_retry(options.retry());
            for (canonical, (_, v)) in &options.values {
                if let Some(k) = canonical.strip_prefix("az:").and_then(|n| AzureConfigKey::from_str(n).ok()) {
                    b = b.with_config(k, v);
                }
            }
            Arc::new(b.with_container_name(url.bucket()).build()?)
        }
    })
}

/// An [`Error::Storage`] for `error`, at `location`, while doing `operation`.
pub(crate) fn storage_error(
    options: &StorageOptions,
    location: &str,
    operation: &str,
    error: object_store::Error,
) -> Error {
    use object_store::Error as E;
    let kind = match &error {
        E::NotFound { .. } => StorageErrorKind::NotFound,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => StorageErrorKind::PermissionDenied,
        E::Precondition { .. } | E::NotModified { .. } | E::AlreadyExists { .. } => {
            StorageErrorKind::PreconditionFailed
        }
        E::UnknownConfigurationKey { .. } => StorageErrorKind::Configuration,
        _ if is_timeout(&error) => StorageErrorKind::Timeout,
        _ => StorageErrorKind::Other,
    };
    let message = options.scrub(chain(&error));
    Error::Storage { location: location.to_owned(), operation: operation.to_owned(), kind, message }
}

/// The error and its sources, on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Whether a request timed out: an HTTP error of kind `Timeout`, or an I/O time-out, in the
/// error's sources (typed: the store's messages are not parsed).
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
            || s.downcast_ref::<HttpError>().is_some_and(|e| matches!(e.kind(), HttpErrorKind::Timeout))
        {
            return true;
        }
        source = s.source();
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// One object under a listed prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    /// The key relative to the listed prefix (`data/checkpoints/1.pt`).
    pub rel: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its ETag, when the store gives one.
    pub etag: Option<String>,
}

/// A connection to the prefix of one model: the store client and the options.
#[derive(Clone)]
pub(crate) struct Remote {
    pub url: ObjectUrl,
    pub options: StorageOptions,
    store: Arc<dyn ObjectStore>,
}

impl Remote {
    pub(crate) fn new(url: &ObjectUrl, options: &StorageOptions) -> Result<Remote> {
        Ok(Remote { url: url.clone(), options: options.clone(), store: store(url, options)? })
    }

    /// The URL of `rel` (for messages).
    pub(crate) fn url_of(&self, rel: &str) -> String {
        self.url.join(rel).to_string()
    }

    /// The store client (for the upload module).
    pub(crate) fn client(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Count one object written (a multipart upload, done by the upload module).
    pub(crate) fn count_put(&self) {
        self.options.stats.puts.fetch_add(1, Ordering::Relaxed);
    }

    /// Count an object of the model written by a save, of `bytes` bytes.
    pub(crate) fn count_saved(&self, bytes: u64) {
        self.options.stats.saved_objects.fetch_add(1, Ordering::Relaxed);
        self.options.stats.saved_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The request counters of these options.
    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.options.stats
    }

    pub(crate) fn path(&self, rel: &str) -> Result<StorePath> {
        StorePath::parse(self.url.key(rel)).map_err(|e| Error::Storage {
            location: self.url_of(rel),
            operation: "invalid object key".to_owned(),
            kind: StorageErrorKind::Other,
            message: e.to_string(),
        })
    }

    pub(crate) fn error(&self, rel: &str, operation: &str, e: object_store::Error) -> Error {
        storage_error(&self.options, &self.url_of(rel), operation, e)
    }

    /// Every object under the model's prefix, in one (paginated) listing.
    pub(crate) fn list(&self) -> Result<Vec<Listed>> {
        let prefix = if self.url.prefix().is_empty() { None } else { Some(self.path("")?) };
        self.options.stats.lists.fetch_add(1, Ordering::Relaxed);
        let store = self.store.clone();
        let base = self.url.prefix().to_owned();
        let found = block_on(async move {
            let mut stream = store.list(prefix.as_ref());
            let mut out = Vec::new();
            while let Some(item) = stream.next().await {
                let meta = item?;
                let key = meta.location.as_ref();
                let rel = if base.is_empty() {
                    Some(key)
                } else {
                    key.strip_prefix(base.as_str()).and_then(|r| r.strip_prefix('/'))
                };
                if let Some(rel) = rel.filter(|r| !r.is_empty()) {
                    out.push(Listed { rel: rel.to_owned(), size: meta.size, etag: meta.e_tag });
                }
            }
            Ok::<_, object_store::Error>(out)
        });
        found.map_err(|e| {
            let generic = matches!(e, object_store::Error::Generic { .. });
            let mut error = self.error("", "cannot list the model's objects", e);
            // A listing's failure comes without a typed kind (object_store reports it as a
            // generic error); a HEAD of the metadata gets the store's typed answer (no bucket,
            // no permission), which is the kind of the listing's failure too. The message stays
            // the listing's own.
            if let (true, Some(probed), Error::Storage { kind, .. }) = (generic, self.probe_kind(), &mut error) {
                *kind = probed;
            }
            error
        })
    }

    /// The kind of the error of a HEAD of `metadata.yaml`, when the store's typed answer says
    /// why a listing failed (not found, permission denied).
    fn probe_kind(&self) -> Option<StorageErrorKind> {
        let path = self.path("metadata.yaml").ok()?;
        let store = self.store.clone();
        match block_on(async move { store.head(&path).await }) {
            Err(object_store::Error::NotFound { .. }) => Some(StorageErrorKind::NotFound),
            Err(object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }) => {
                Some(StorageErrorKind::PermissionDenied)
            }
            _ => None,
        }
    }

    /// Stream the object `rel` into `sink`, chunk by chunk (bounded memory), failing with a
    /// precondition error if its ETag is no longer `etag`. Returns the number of bytes.
    pub(crate) fn download(
        &self,
        rel: &str,
        etag: Option<&str>,
        sink: &mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send),
    ) -> Result<u64> {
        let path = self.path(rel)?;
        self.options.stats.gets.fetch_add(1, Ordering::Relaxed);
        let store = self.store.clone();
        let options = GetOptions { if_match: etag.map(str::to_owned), ..Default::default() };
        let counters = self.options.stats.clone();
        let outcome = block_on(async move {
            let result = store.get_opts(&path, options).await.map_err(Failure::Store)?;
            let mut stream = result.into_stream();
            let mut total = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(Failure::Store)?;
                sink(&chunk).map_err(Failure::Sink)?;
                total += chunk.len() as u64;
                counters.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            Ok::<u64, Failure>(total)
        });
        match outcome {
            Ok(n) => Ok(n),
            Err(Failure::Store(e)) => Err(self.error(rel, "cannot download", e)),
            Err(Failure::Sink(e)) => Err(Error::Io {
                path: PathBuf::from(self.url_of(rel)),
                operation: "cannot store the downloaded object".to_owned(),
                source: e.into(),
            }),
        }
    }

    /// The bytes of the small object `rel` (at most `limit` bytes are kept: more is an error the
    /// caller reports), if its ETag is still `etag`.
    pub(crate) fn read_small(&self, rel: &str, etag: Option<&str>, limit: usize) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.download(rel, etag, &mut |chunk| {
            if bytes.len() + chunk.len() > limit + 1 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the object grew over the size limit",
                ));
            }
            bytes.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(bytes)
    }

    /// Size and ETag of the object `rel` (one `HEAD`).
    pub(crate) fn head(&self, rel: &str) -> Result<Listed> {
        let path = self.path(rel)?;
        let store = self.store.clone();
        let meta = block_on(async move { store.head(&path).await });
        let meta = meta.map_err(|e| self.error(rel, "cannot examine", e))?;
        Ok(Listed { rel: rel.to_owned(), size: meta.size, etag: meta.e_tag })
    }

    /// Size and ETag of the object `rel`, or `None` if there is none (one `HEAD`).
    pub(crate) fn head_opt(&self, rel: &str) -> Result<Option<Listed>> {
        match self.head(rel) {
            Ok(found) => Ok(Some(found)),
            Err(e) if e.storage_kind() == Some(StorageErrorKind::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Upload `bytes` as `rel` in one request, as `mode` says; its new ETag. A conditional
    /// write that finds another version is an [`Error::Storage`] of kind precondition failed.
    pub(crate) fn put(&self, rel: &str, bytes: Vec<u8>, mode: WriteMode<'_>) -> Result<Option<String>> {
        let path = self.path(rel)?;
        let store = self.store.clone();
        let mode = match mode {
            WriteMode::Overwrite => PutMode::Overwrite,
            WriteMode::Create => PutMode::Create,
            WriteMode::Update(etag) => PutMode::Update(UpdateVersion { e_tag: Some(etag.to_owned()), version: None }),
        };
        let size = bytes.len() as u64;
        self.options.stats.puts.fetch_add(1, Ordering::Relaxed);
        let options = PutOptions { mode, ..Default::default() };
        let done = block_on(async move { store.put_opts(&path, bytes.into(), options).await })
            .map_err(|e| self.error(rel, "cannot upload", e))?;
        self.options.stats.bytes_up.fetch_add(size, Ordering::Relaxed);
        Ok(done.e_tag)
    }

    /// Delete the object `rel` (no error if there is none).
    pub(crate) fn delete(&self, rel: &str) -> Result<()> {
        let path = self.path(rel)?;
        let store = self.store.clone();
        self.options.stats.deletes.fetch_add(1, Ordering::Relaxed);
        match block_on(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(rel, "cannot delete", e)),
        }
    }
}

/// How [`Remote::put`] writes an object.
#[derive(Debug, Clone, Copy)]
pub(crate) enum WriteMode<'a> {
    /// Whatever is there.
    Overwrite,
    /// Only if there is no object (`If-None-Match: *`).
    Create,
    /// Only over the version with this ETag (`If-Match`).
    Update(&'a str),
}

enum Failure {
    Store(object_store::Error),
    Sink(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into_iter()
    }

    fn config(options: &StorageOptions, vars: &[(&str, &str)]) -> BTreeMap<String, String> {
        options.s3_config(env(vars)).into_iter().map(|(k, v)| (k.as_ref().to_owned(), v)).collect()
    }

    #[test]
    fn instance_metadata_is_not_asked_when_the_aws_switch_disables_it() {
        let skip = AmazonS3ConfigKey::SkipSignature.as_ref().to_owned();
        // No credentials, metadata disabled: unsigned requests, no instance metadata lookup.
        let c = config(&StorageOptions::new(), &[("AWS_EC2_METADATA_DISABLED", "true")]);
        assert_eq!(c.get(&skip).map(String::as_str), Some("true"), "{c:?}");
        // Credentials given (environment or option): signed as usual.
        let c = config(&StorageOptions::new(), &[("AWS_EC2_METADATA_DISABLED", "true"), ("AWS_ACCESS_KEY_ID", "k")]);
        assert!(!c.contains_key(&skip), "{c:?}");
        let mut o = StorageOptions::new();
        o.set("access_key_id", "k").unwrap();
        assert!(!config(&o, &[("AWS_EC2_METADATA_DISABLED", "1")]).contains_key(&skip));
        // An explicit endpoint without credentials: unsigned too.
        let c = config(&StorageOptions::new(), &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")]);
        assert_eq!(c.get(&skip).map(String::as_str), Some("true"), "{c:?}");
        // Not disabled, AWS itself: object_store's default chain (which includes the instance metadata).
        assert!(!config(&StorageOptions::new(), &[]).contains_key(&skip));
    }

    #[test]
    fn explicit_options_win_over_the_environment() {
        let vars = [
            ("AWS_ENDPOINT_URL", "http://env:1"),
            ("AWS_ACCESS_KEY_ID", "env-id"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_DEFAULT_REGION", "eu-west-3"),
            ("AWS_SESSION_TOKEN", "env-token"),
            ("AWS_NOT_AN_OPTION", "x"),
            ("HOME", "/root"),
        ];
        let none = config(&StorageOptions::new(), &vars);
        assert_eq!(none["aws_endpoint"], "http://env:1");
        assert_eq!(none["aws_access_key_id"], "env-id");
        assert_eq!(none["aws_secret_access_key"], "env-secret");
        assert_eq!(none["aws_default_region"], "eu-west-3");
        assert_eq!(none["aws_session_token"], "env-token");
        assert_eq!(none["allow_http"], "true", "an http:// endpoint allows HTTP");
        let mut explicit = StorageOptions::new();
        explicit
            .set("endpoint", "https://explicit:2")
            .unwrap()
            .set("aws_access_key_id", "id")
            .unwrap()
            .set("secret_access_key", "secret")
            .unwrap()
            .set("region", "us-east-1")
            .unwrap();
        let c = config(&explicit, &vars);
        assert_eq!(c["aws_endpoint"], "https://explicit:2");
        assert_eq!(c["aws_access_key_id"], "id");
        assert_eq!(c["aws_secret_access_key"], "secret");
        assert_eq!(c["aws_region"], "us-east-1");
        assert_eq!(
            c["aws_default_region"], "eu-west-3",
            "AWS_REGION or AWS_DEFAULT_REGION: object_store prefers region"
        );
        assert!(!c.contains_key("allow_http"), "an https endpoint does not allow HTTP");
        let mut no_http = StorageOptions::new();
        no_http.set("allow_http", "false").unwrap();
        assert_eq!(config(&no_http, &vars)["allow_http"], "false");
        let region = config(&StorageOptions::new(), &[("AWS_REGION", "ap-south-1"), ("AWS_ALLOW_HTTP", "true")]);
        assert_eq!((region["aws_region"].as_str(), region["allow_http"].as_str()), ("ap-south-1", "true"));
    }

    #[test]
    fn prefixed_and_plain_keys_are_one_option() {
        let mut o = StorageOptions::new();
        o.set("aws_endpoint", "http://a").unwrap().set("endpoint", "http://b").unwrap();
        assert_eq!(config(&o, &[])["aws_endpoint"], "http://b", "the last one set wins");
        o.set("AWS_ENDPOINT_URL", "http://c").unwrap();
        assert_eq!(config(&o, &[])["aws_endpoint"], "http://c");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let mut o = StorageOptions::new();
        let e = o.set("endpiont", "x").unwrap_err();
        assert!(matches!(&e, Error::InvalidStorageOption { key, .. } if key == "endpiont"), "{e:?}");
        assert_eq!((e.code(), e.category()), ("invalid_storage_option", crate::error::Category::Value));
        assert!(e.to_string().contains("unknown key"), "{e}");
        for (k, v) in [("timeout", "soon"), ("timeout", "-1"), ("retry_max", "1.5"), ("retry_timeout", "inf")] {
            let e = o.set(k, v).unwrap_err();
            assert!(e.to_string().contains("expected"), "{e}");
        }
        o.set("timeout", "2.5").unwrap().set("retry_max", "3").unwrap().set("retry_timeout", "20").unwrap();
        assert_eq!(o.retry().max_retries, 3);
        assert_eq!(o.retry().retry_timeout, Duration::from_secs(20));
        assert_eq!(o.seconds("timeout"), Some(Duration::from_millis(2500)));
        assert_eq!(StorageOptions::parse_pair("region=us-east-1").unwrap(), ("region".into(), "us-east-1".into()));
        assert_eq!(StorageOptions::parse_pair("token=a=b").unwrap().1, "a=b");
        let err = StorageOptions::parse_pair("s3cr3t-typed-alone").unwrap_err();
        assert!(matches!(&err, Error::InvalidStorageOption { key, .. } if key.is_empty()), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("s3cr3t"), "{err}");
        assert!(err.to_string().contains("expected KEY=VALUE"), "{err}");
        assert!(StorageOptions::parse_pair("=x").is_err());
        o.set("google_service_account_key", "{}").unwrap().set("azure_storage_account_key", "k").unwrap();
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut o = StorageOptions::new();
        o.set("endpoint", "http://127.0.0.1:1").unwrap();
        for (k, v) in [
            ("secret_access_key", "hunter2-a"),
            ("aws_session_token", "hunter2-b"),
            ("token", "hunter2-c"),
            ("access_key_id", "hunter2-d"),
            ("azure_storage_account_key", "hunter2-e"),
        ] {
            o.set(k, v).unwrap();
        }
        let shown = format!("{o:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("http://127.0.0.1:1") && shown.contains("<redacted>"), "{shown}");
        assert_eq!(o.scrub("signature for hunter2-a failed".into()), "signature for <redacted> failed");
    }

    #[test]
    fn blocking_works_inside_and_outside_a_runtime() {
        assert_eq!(block_on(async { 1 + 1 }), 2);
        let other = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(other.block_on(async { block_on(async { 3 }) }), 3);
        let threads: Vec<_> = (0..4).map(|i| std::thread::spawn(move || block_on(async move { i * 2 }))).collect();
        assert_eq!(threads.into_iter().map(|t| t.join().unwrap()).sum::<i32>(), 12);
    }
}
