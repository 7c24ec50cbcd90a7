//! How the solver client moves bytes: a request retried while the solver is busy or
//! failing ([`with_retries`]), answers read up to a cap, the time a transfer is given, and
//! a file's hash. [`super::client`] is where to start.

use super::client::{ClientError, ATTEMPTS, MAX_RETRY_WAIT, MIN_TRANSFER_BYTES_PER_SEC, REQUEST_TIMEOUT};
use alloy::primitives::B256;
use backon::BackoffBuilder;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Runs `attempt` until it succeeds, fails for good, or [`ATTEMPTS`] transient failures
/// (429, 5xx, no answer) have passed, waiting between them with exponential backoff and
/// jitter, or as long as the solver's `Retry-After` asks when that is longer. Once `stop`
/// is cancelled (the process is stopping) a failure is not retried: the stop never waits
/// on a busy or vanished solver.
pub(super) async fn with_retries<T, Fut>(
    what: &str,
    stop: &CancellationToken,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, ClientError>
where
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(MAX_RETRY_WAIT / 2)
        .with_jitter()
        .with_max_times(ATTEMPTS - 1)
        .build();
    loop {
        let e = match attempt().await {
            Err(e) if e.is_transient() => e,
            done => return done,
        };
        if stop.is_cancelled() {
            return Err(e);
        }
        let Some(delay) = delays.next() else { return Err(e) };
        let delay = match e.retry_after() {
            Some(asked) if asked > MAX_RETRY_WAIT => return Err(e),
            Some(asked) => asked.max(delay),
            None => delay,
        };
        tracing::warn!(request = what, error = %e, retry_in_ms = delay.as_millis() as u64, "solver request failed; retrying");
        tokio::select! {
            _ = stop.cancelled() => return Err(e),
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Reads at most `cap` bytes of an answer's body, or fails.
pub(super) async fn read_capped(resp: reqwest::Response, cap: u64, base: &str) -> Result<Vec<u8>, ClientError> {
    let too_big = || ClientError::Decode(format!("the answer is over {cap} bytes: refused"));
    if resp.content_length().is_some_and(|n| n > cap) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ClientError::Unreachable { url: base.to_string(), reason: e.to_string() })?;
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The time a transfer of `bytes` is given.
pub(super) fn transfer_timeout(bytes: u64) -> Duration {
    REQUEST_TIMEOUT + Duration::from_secs(bytes / MIN_TRANSFER_BYTES_PER_SEC)
}

/// The sha256 of the file at `path`, read in blocks.
pub(super) async fn file_sha256(path: &Path) -> Result<B256, ClientError> {
    use tokio::io::AsyncReadExt;
    let io = |source| ClientError::Io { what: format!("reading {}", path.display()), source };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut block).await.map_err(io)?;
        if n == 0 {
            return Ok(B256::from_slice(&hasher.finalize()));
        }
        hasher.update(&block[..n]);
    }
}

/// The sha256 in an earlier solver's "deal … already has a result (sha256 0x…)" sentence.
pub(super) fn legacy_result_sha(message: &str) -> Option<B256> {
    let (_, rest) = message.split_once("already has a result (sha256 ")?;
    rest.get(..66)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_solvers_conflict_sentence_still_names_the_result() {
        let sha = B256::repeat_byte(0xab);
        let old = format!("deal 0x01 already has a result (sha256 {sha}): results are not replaced");
        assert_eq!(legacy_result_sha(&old), Some(sha));
        assert_eq!(legacy_result_sha("deal 0x01 is expired: no result is taken now"), None);
    }

    #[tokio::test]
    async fn a_stopping_process_asks_once_and_waits_for_no_retry() {
        let stop = CancellationToken::new();
        stop.cancel();
        let mut attempts = 0;
        let answer: Result<(), _> = with_retries("/api/v1/resource_offers/0x01", &stop, || {
            attempts += 1;
            std::future::ready(Err(ClientError::Unreachable {
                url: "http://127.0.0.1:9".into(),
                reason: "refused".into(),
            }))
        })
        .await;
        assert!(matches!(answer, Err(ClientError::Unreachable { .. })));
        assert_eq!(attempts, 1);
    }

    #[tokio::test]
    async fn a_running_process_asks_again_until_it_gets_an_answer() {
        let stop = CancellationToken::new();
        let mut attempts = 0;
        let answer = with_retries("/api/v1/info", &stop, || {
            attempts += 1;
            std::future::ready(if attempts < 3 {
                Err(ClientError::Refused {
                    status: 503,
                    code: "busy".into(),
                    message: "busy".into(),
                    retry_after: None,
                })
            } else {
                Ok(attempts)
            })
        })
        .await;
        assert_eq!(answer.unwrap(), 3);
    }
}
