//! A container registry on loopback that serves one image, for pull tests (no registry is
//! reachable from our machines). It speaks the part of the distribution API that the
//! Docker engine uses to pull: `/v2/`, a schema 2 manifest by tag or digest, and blobs.
//! The engine pulls from `127.0.0.1:<port>/…` over plain HTTP (loopback registries are
//! trusted without TLS).

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

struct Served {
    image_id: String,
    manifest: Vec<u8>,
    manifest_digest: String,
    blobs: HashMap<String, Vec<u8>>,
    blob_gets: AtomicUsize,
}

/// A registry serving one image (a local image plus a layer of its own) under every
/// repository name and tag.
pub struct TestRegistry {
    /// Its port on 127.0.0.1.
    pub port: u16,
    served: Arc<Served>,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl TestRegistry {
    /// Serves `image` (a local image, exported with `docker save`) with a layer of its own
    /// holding `/pulled` = "from the registry `marker`" from a task on `runtime`. A marker
    /// no earlier run used makes an image no engine has yet.
    pub fn serve(runtime: &tokio::runtime::Runtime, image: &str, marker: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("image.tar");
        let saved = std::process::Command::new("docker").arg("save").arg(image).arg("-o").arg(&tar).status().unwrap();
        assert!(saved.success(), "docker save {image}");
        tar::Archive::new(std::fs::File::open(&tar).unwrap()).unpack(dir.path()).unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
        let config = std::fs::read(dir.path().join(index[0]["Config"].as_str().unwrap())).unwrap();
        let mut layers: Vec<Vec<u8>> = index[0]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| std::fs::read(dir.path().join(l.as_str().unwrap())).unwrap())
            .collect();
        // One layer of its own on top, that no engine has yet: `/pulled`, so that a pull
        // fetches a blob and the job can tell it runs the pulled image.
        let mut top = tar::Builder::new(Vec::new());
        let text = format!("from the registry {marker}\n");
        let text = text.as_bytes();
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        top.append_data(&mut h, "pulled", text).unwrap();
        let top = top.into_inner().unwrap();
        let mut config: serde_json::Value = serde_json::from_slice(&config).unwrap();
        config["rootfs"]["diff_ids"].as_array_mut().unwrap().push(digest(&top).into());
        if let Some(history) = config["history"].as_array_mut() {
            history.push(serde_json::json!({ "created_by": "dcn test registry: /pulled" }));
        }
        let config = serde_json::to_vec(&config).unwrap();
        layers.push(top);
        // Layers go as the plain tars `docker save` wrote: the engine detects that they
        // are not compressed, and their digests are their diff ids.
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": config.len(),
                "digest": digest(&config),
            },
            "layers": layers.iter().map(|l| serde_json::json!({
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": l.len(),
                "digest": digest(l),
            })).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest).unwrap();
        let image_id = digest(&config);
        let mut blobs: HashMap<String, Vec<u8>> = layers.into_iter().map(|l| (digest(&l), l)).collect();
        blobs.insert(image_id.clone(), config);
        let served = Arc::new(Served {
            image_id,
            manifest_digest: digest(&manifest),
            manifest,
            blobs,
            blob_gets: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v2/", get(|| async { "{}" }))
            .route("/v2/{*path}", get(answer))
            .with_state(served.clone());
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self { port, served }
    }

    /// How many blobs were fetched so far.
    pub fn blob_gets(&self) -> usize {
        self.served.blob_gets.load(Ordering::SeqCst)
    }

    /// The digest of the served manifest: `…@<digest>` names the image everywhere.
    pub fn manifest_digest(&self) -> &str {
        &self.served.manifest_digest
    }

    /// The served image's ID (the digest of its config), as the engine will name it.
    pub fn image_id(&self) -> &str {
        &self.served.image_id
    }
}

/// `<name>/manifests/<reference>` or `<name>/blobs/<digest>` (GET; axum answers HEAD
/// with the same headers).
async fn answer(State(s): State<Arc<Served>>, UrlPath(path): UrlPath<String>) -> Response {
    if let Some((_, reference)) = path.rsplit_once("/manifests/") {
        if reference.starts_with("sha256:") && reference != s.manifest_digest {
            return StatusCode::NOT_FOUND.into_response();
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(MANIFEST_TYPE));
        headers.insert("docker-content-digest", HeaderValue::from_str(&s.manifest_digest).unwrap());
        return (headers, s.manifest.clone()).into_response();
    }
    if let Some((_, d)) = path.rsplit_once("/blobs/") {
        if let Some(blob) = s.blobs.get(d) {
            s.blob_gets.fetch_add(1, Ordering::SeqCst);
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
            headers.insert("docker-content-digest", HeaderValue::from_str(d).unwrap());
            return (headers, blob.clone()).into_response();
        }
    }
    StatusCode::NOT_FOUND.into_response()
}
