//! Images: use the local copy when there is one, else pull it with a progress bar.

use super::ExecutorError;
use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;

/// Makes sure `image` is present locally, pulling it if needed.
pub async fn ensure_image(docker: &Docker, image: &str) -> Result<String, ExecutorError> {
    let id_of = |inspected: bollard::models::ImageInspect| {
        inspected.id.ok_or_else(|| ExecutorError::ImageUnavailable {
            image: image.to_string(),
            reason: "the engine reports no image ID".into(),
        })
    };
    if let Ok(inspected) = docker.inspect_image(image).await {
        return id_of(inspected);
    }
    if image.starts_with("sha256:") {
        // A local image ID (what a provider pinned at signing) names no registry: it is
        // here or gone, and another image must not stand in for it.
        return Err(ExecutorError::ImageUnavailable {
            image: image.to_string(),
            reason: "an image ID is never pulled, and this one is no longer on this machine".into(),
        });
    }
    tracing::info!(%image, "image not present locally: pulling");
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("pulling {msg} {bar:30} {bytes}/{total_bytes} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(image.to_string());
    let options = CreateImageOptionsBuilder::default().from_image(image).build();
    let mut stream = docker.create_image(Some(options), None, None);
    // Per-layer progress, summed into one bar.
    let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| {
            bar.abandon();
            ExecutorError::ImageUnavailable { image: image.to_string(), reason: e.to_string() }
        })?;
        if let Some(err) = info.error_detail.and_then(|d| d.message) {
            bar.abandon();
            return Err(ExecutorError::ImageUnavailable { image: image.to_string(), reason: err });
        }
        if let (Some(id), Some(p)) = (info.id, info.progress_detail) {
            if let (Some(cur), Some(total)) = (p.current, p.total) {
                layers.insert(id, (cur.max(0) as u64, total.max(0) as u64));
                let (c, t) = layers.values().fold((0, 0), |(c, t), (lc, lt)| (c + lc, t + lt));
                bar.set_length(t);
                bar.set_position(c);
            }
        }
    }
    bar.finish_and_clear();
    let inspected = docker
        .inspect_image(image)
        .await
        .map_err(|e| ExecutorError::ImageUnavailable { image: image.to_string(), reason: e.to_string() })?;
    tracing::info!(%image, "image pulled");
    id_of(inspected)
}
