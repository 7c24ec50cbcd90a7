//! Images: use the local copy when there is one, else pull it with a progress bar, within
//! a time and a size limit (THREATS X6).

use super::ExecutorError;
use bollard::query_parameters::CreateImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::time::Duration;

/// How long and how large a pull may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullLimits {
    /// The longest a pull may take.
    pub timeout: Duration,
    /// The most bytes its layers may add up to, as the registry reports them (compressed).
    pub max_bytes: u64,
}

impl Default for PullLimits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(600), max_bytes: 20 << 30 }
    }
}

/// Makes sure `image` is present locally, pulling it if needed within `limits`; a pull
/// over them is stopped (the engine drops what it fetched) and the image is unavailable.
/// Returns the image's ID.
pub async fn ensure_image(docker: &Docker, image: &str, limits: &PullLimits) -> Result<String, ExecutorError> {
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
    let unavailable = |reason: String| ExecutorError::ImageUnavailable { image: image.to_string(), reason };
    match tokio::time::timeout(limits.timeout, pull(docker, image, limits.max_bytes)).await {
        Ok(pulled) => pulled?,
        Err(_) => {
            return Err(unavailable(format!(
                "the pull did not finish within {} s (executor.pull_timeout_secs)",
                limits.timeout.as_secs()
            )))
        }
    }
    let inspected = docker.inspect_image(image).await.map_err(|e| unavailable(e.to_string()))?;
    tracing::info!(%image, "image pulled");
    id_of(inspected)
}

/// Pulls `image`, stopping when its layers add up to more than `max_bytes`.
async fn pull(docker: &Docker, image: &str, max_bytes: u64) -> Result<(), ExecutorError> {
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
                let (c, t) = layers
                    .values()
                    .fold((0u64, 0u64), |(c, t), (lc, lt)| (c.saturating_add(*lc), t.saturating_add(*lt)));
                bar.set_length(t);
                bar.set_position(c);
                if t > max_bytes || c > max_bytes {
                    bar.abandon();
                    // Dropping the stream ends the request, and the engine its pull.
                    return Err(ExecutorError::ImageUnavailable {
                        image: image.to_string(),
                        reason: format!(
                            "its layers add up to more than the {} MiB this provider pulls (executor.max_image_mb)",
                            max_bytes >> 20
                        ),
                    });
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok(())
}
