//! NVIDIA GPUs: detection with `nvidia-smi`, and a pool that hands each job specific GPUs
//! (never one that another running job holds) for Docker device requests.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::{Arc, Mutex};

/// One GPU as `nvidia-smi` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Gpu {
    /// Index on this machine.
    pub index: u32,
    /// Stable UUID (`GPU-…`), used as the Docker device id.
    pub uuid: String,
    /// Model name.
    pub name: String,
    /// Memory in MB.
    pub vram_mb: u64,
}

/// Why no GPU can be offered; each says what to install or check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuUnavailable {
    /// No `nvidia-smi` on PATH.
    #[error("no NVIDIA GPU detected: nvidia-smi is not installed (install the NVIDIA driver)")]
    NoNvidiaSmi,
    /// `nvidia-smi` failed, usually because the driver is not loaded.
    #[error("no NVIDIA GPU detected: nvidia-smi failed ({0}); is the NVIDIA driver loaded?")]
    DriverFailed(String),
    /// The driver answered but lists no GPU.
    #[error("no NVIDIA GPU detected: nvidia-smi lists none")]
    NoGpus,
    /// GPUs exist but Docker cannot hand them to containers.
    #[error(
        "NVIDIA GPUs found but Docker cannot use them: the NVIDIA container toolkit is missing \
         (install nvidia-container-toolkit and restart dockerd)"
    )]
    NoContainerToolkit,
    /// Unparseable output.
    #[error("cannot read nvidia-smi output: {0}")]
    Parse(String),
}

/// The query whose output [`parse_nvidia_smi`] reads.
pub const NVIDIA_SMI_ARGS: [&str; 2] = ["--query-gpu=index,uuid,name,memory.total", "--format=csv,noheader,nounits"];

/// Parses `nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits`.
pub fn parse_nvidia_smi(csv: &str) -> Result<Vec<Gpu>, GpuUnavailable> {
    let mut gpus = Vec::new();
    for line in csv.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [index, uuid, name @ .., mem] = fields.as_slice() else {
            return Err(GpuUnavailable::Parse(format!("expected 4 fields in `{line}`")));
        };
        if name.is_empty() {
            return Err(GpuUnavailable::Parse(format!("expected 4 fields in `{line}`")));
        }
        let bad = |what: &str| GpuUnavailable::Parse(format!("bad {what} in `{line}`"));
        gpus.push(Gpu {
            index: index.parse().map_err(|_| bad("index"))?,
            uuid: uuid.to_string(),
            // A model name may itself contain commas.
            name: name.join(","),
            vram_mb: mem.trim_end_matches(" MiB").parse().map_err(|_| bad("memory"))?,
        });
    }
    if gpus.is_empty() {
        return Err(GpuUnavailable::NoGpus);
    }
    Ok(gpus)
}

/// Detects this machine's GPUs and checks that Docker can hand them to containers.
pub fn detect() -> Result<Vec<Gpu>, GpuUnavailable> {
    let out = match Command::new("nvidia-smi").args(NVIDIA_SMI_ARGS).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(GpuUnavailable::NoNvidiaSmi),
        Err(e) => return Err(GpuUnavailable::DriverFailed(e.to_string())),
    };
    if !out.status.success() {
        let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let msg = if msg.is_empty() { String::from_utf8_lossy(&out.stdout).trim().to_string() } else { msg };
        return Err(GpuUnavailable::DriverFailed(msg));
    }
    let gpus = parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))?;
    let toolkit = ["nvidia-container-runtime-hook", "nvidia-container-cli", "nvidia-ctk"]
        .iter()
        .any(|b| Command::new(b).arg("--version").output().is_ok());
    if !toolkit {
        return Err(GpuUnavailable::NoContainerToolkit);
    }
    Ok(gpus)
}

/// Not enough free GPUs for a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("job needs {wanted} GPU(s) with {vram_mb} MB each; {free} of {total} suitable GPU(s) are free")]
pub struct GpusBusy {
    /// Asked for.
    pub wanted: u32,
    /// VRAM asked per GPU.
    pub vram_mb: u64,
    /// Free suitable ones now.
    pub free: usize,
    /// Offered in all.
    pub total: usize,
}

/// The GPUs offered for jobs and which are in use.
#[derive(Debug)]
pub struct GpuPool {
    gpus: Vec<Gpu>,
    free: Mutex<BTreeSet<usize>>,
}

/// GPUs held by one job; they return to the pool when this is dropped.
#[derive(Debug)]
pub struct GpuLease {
    pool: Arc<GpuPool>,
    held: Vec<usize>,
}

impl GpuPool {
    /// A pool over `gpus`.
    pub fn new(gpus: Vec<Gpu>) -> Arc<Self> {
        let free = (0..gpus.len()).collect();
        Arc::new(Self { gpus, free: Mutex::new(free) })
    }

    /// Every GPU in the pool.
    pub fn gpus(&self) -> &[Gpu] {
        &self.gpus
    }

    /// How many are free now.
    pub fn free_count(&self) -> usize {
        self.free.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Takes `n` free GPUs with at least `vram_mb` each, lowest index first.
    pub fn acquire(self: &Arc<Self>, n: u32, vram_mb: u64) -> Result<GpuLease, GpusBusy> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        let suitable: Vec<usize> = free.iter().copied().filter(|&i| self.gpus[i].vram_mb >= vram_mb).collect();
        if suitable.len() < n as usize {
            return Err(GpusBusy { wanted: n, vram_mb, free: suitable.len(), total: self.gpus.len() });
        }
        let held: Vec<usize> = suitable.into_iter().take(n as usize).collect();
        for i in &held {
            free.remove(i);
        }
        Ok(GpuLease { pool: Arc::clone(self), held })
    }
}

impl GpuLease {
    /// The leased GPUs.
    pub fn gpus(&self) -> Vec<&Gpu> {
        self.held.iter().map(|&i| &self.pool.gpus[i]).collect()
    }

    /// The Docker device request giving a container exactly these GPUs.
    pub fn device_request(&self) -> bollard::models::DeviceRequest {
        bollard::models::DeviceRequest {
            driver: Some("nvidia".into()),
            device_ids: Some(self.gpus().iter().map(|g| g.uuid.clone()).collect()),
            capabilities: Some(vec![vec!["gpu".into()]]),
            ..Default::default()
        }
    }
}

impl Drop for GpuLease {
    fn drop(&mut self) {
        let mut free = self.pool.free.lock().unwrap_or_else(|p| p.into_inner());
        free.extend(self.held.iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded from a machine with two different GPUs (nounits).
    const RECORDED: &str = "0, GPU-8a3b6f0e-5c1d-4f7e-9a2b-1c3d5e7f9a0b, NVIDIA A100-SXM4-40GB, 40960\n\
                            1, GPU-1f2e3d4c-5b6a-4789-8a7b-6c5d4e3f2a1b, NVIDIA GeForce RTX 4090, 24564\n";

    #[test]
    fn parses_recorded_output() {
        let gpus = parse_nvidia_smi(RECORDED).unwrap();
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].uuid, "GPU-8a3b6f0e-5c1d-4f7e-9a2b-1c3d5e7f9a0b");
        assert_eq!(gpus[1].name, "NVIDIA GeForce RTX 4090");
        assert_eq!(gpus[1].vram_mb, 24564);
        assert_eq!(parse_nvidia_smi("0, GPU-x, Tesla T4, 15360 MiB").unwrap()[0].vram_mb, 15360);
        assert_eq!(parse_nvidia_smi("0, GPU-x, Weird, Name, 1").unwrap()[0].name, "Weird,Name");
        assert_eq!(parse_nvidia_smi("\n"), Err(GpuUnavailable::NoGpus));
        assert!(matches!(parse_nvidia_smi("0, GPU-x"), Err(GpuUnavailable::Parse(_))));
        assert!(matches!(parse_nvidia_smi("x, GPU-x, T4, 1"), Err(GpuUnavailable::Parse(_))));
    }

    #[test]
    fn jobs_never_share_a_gpu_and_leases_return() {
        let pool = GpuPool::new(parse_nvidia_smi(RECORDED).unwrap());
        let a = pool.acquire(1, 0).unwrap();
        let b = pool.acquire(1, 0).unwrap();
        assert_ne!(a.gpus()[0].uuid, b.gpus()[0].uuid);
        let busy = pool.acquire(1, 0).unwrap_err();
        assert_eq!((busy.free, busy.total), (0, 2));
        drop(a);
        let c = pool.acquire(1, 0).unwrap();
        assert_eq!(c.gpus()[0].index, 0, "released GPU handed out again");
        drop((b, c));
        assert_eq!(pool.free_count(), 2);
    }

    #[test]
    fn vram_requirement_picks_big_gpus() {
        let pool = GpuPool::new(parse_nvidia_smi(RECORDED).unwrap());
        let big = pool.acquire(1, 30_000).unwrap();
        assert_eq!(big.gpus()[0].index, 0);
        assert_eq!(pool.acquire(1, 30_000).unwrap_err().free, 0);
        let both = pool.acquire(2, 0);
        assert!(both.is_err(), "only one left");
        let req = big.device_request();
        assert_eq!(req.driver.as_deref(), Some("nvidia"));
        assert_eq!(req.device_ids.unwrap(), vec!["GPU-8a3b6f0e-5c1d-4f7e-9a2b-1c3d5e7f9a0b".to_string()]);
        assert_eq!(req.capabilities.unwrap(), vec![vec!["gpu".to_string()]]);
    }

    #[test]
    fn detect_explains_why_there_is_no_gpu() {
        // On machines without NVIDIA hardware this must say why, not panic.
        if let Err(e) = detect() {
            assert!(e.to_string().contains("NVIDIA") || e.to_string().contains("nvidia"), "{e}");
        }
    }
}
