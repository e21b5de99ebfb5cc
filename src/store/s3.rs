//! S3 and S3-compatible object storage, for sources and for the store.
//!
//! Credentials, region and endpoint come from the `[s3]` section of the
//! config, else from the usual AWS environment variables. Delta commits on S3
//! need an atomic "create if absent" put: object_store sends
//! `If-None-Match: *`, which AWS S3, MinIO and moto honour, so two writers
//! can never both create one commit file.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories, object_store_factories,
};
use deltalake::{DeltaResult, DeltaTableError};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{ClientOptions, RetryConfig};
use url::Url;

use crate::config::S3Config;

static SETTINGS: RwLock<Option<S3Config>> = RwLock::new(None);

/// Uses `cfg` for every `s3://` URL from now on (sources and store), and
/// makes Delta tables on S3 openable. Call before opening anything on S3.
pub fn configure(cfg: &S3Config) {
    *SETTINGS.write().expect("s3 settings lock") = Some(cfg.clone());
    let scheme = Url::parse("s3://").expect("static URL");
    object_store_factories().insert(scheme.clone(), Arc::new(S3Factory));
    logstore_factories().insert(scheme, Arc::new(S3LogStores));
}

/// The S3 client for the bucket of `url`.
pub fn build(url: &Url) -> object_store::Result<AmazonS3> {
    let cfg = SETTINGS
        .read()
        .expect("s3 settings lock")
        .clone()
        .unwrap_or_default();
    let env_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true" || v == "1");
    let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
    if let Some(e) = &cfg.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(r) = &cfg.region {
        b = b.with_region(r);
    } else if std::env::var_os("AWS_REGION").is_none()
        && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        b = b.with_region("us-east-1");
    }
    if let Some(k) = &cfg.access_key_id {
        b = b.with_access_key_id(k);
    }
    if let Some(k) = &cfg.secret_access_key {
        b = b.with_secret_access_key(k);
    }
    // A store that cannot be reached fails the run within the retry
    // timeout, rather than the library's three minutes.
    let timeout = Duration::from_secs(cfg.retry_timeout_seconds.unwrap_or(30));
    b.with_client_options(
        ClientOptions::new()
            .with_allow_http(cfg.allow_http.unwrap_or(env_http))
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(120)),
    )
    .with_retry(RetryConfig {
        max_retries: 6,
        retry_timeout: timeout,
        ..RetryConfig::default()
    })
    .build()
}

#[derive(Debug)]
struct S3Factory;

impl ObjectStoreFactory for S3Factory {
    fn parse_url_opts(
        &self,
        url: &Url,
        _config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let store = build(url).map_err(|e| DeltaTableError::Generic(e.to_string()))?;
        let path =
            Path::from_url_path(url.path()).map_err(|e| DeltaTableError::Generic(e.to_string()))?;
        Ok((Arc::new(store), path))
    }
}

#[derive(Debug)]
struct S3LogStores;

impl LogStoreFactory for S3LogStores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}
