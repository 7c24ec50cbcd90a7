//! What this machine has (cores, RAM, free disk, GPUs) and what one slot of an offer
//! gets: defaults derived from the machine, and a refusal that says what the machine has
//! when the operator asks for more.

use crate::executor::gpu::{self, Gpu};
use crate::types::Resources;
use std::path::Path;

/// This machine.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Milli-CPU (cores × 1000).
    pub cpu: u64,
    /// RAM in MB.
    pub ram_mb: u64,
    /// Free disk under the data directory, MB.
    pub disk_mb: u64,
    /// NVIDIA GPUs found.
    pub gpus: Vec<Gpu>,
}

/// An offer the machine cannot back.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot offer {count} slot(s) of {what}: this machine has {has} in all. Offer less (provider.offer_count, \
     offer_cpu, offer_ram_mb, offer_gpu; flags --offer-count, --offer-cpu, --offer-ram, --offer-gpu) or leave \
     them unset to derive them from the machine"
)]
pub struct OverOffer {
    /// Slots asked for.
    pub count: u32,
    /// Per-slot amount asked for, with unit.
    pub what: String,
    /// What the machine has, with unit.
    pub has: String,
}

impl Machine {
    /// Detects cores, RAM and free disk under `data_dir`; GPUs only when `want_gpus`
    /// (nvidia-smi must then work).
    pub fn detect(data_dir: &Path, want_gpus: bool) -> Result<Self, gpu::GpuUnavailable> {
        let cores = std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1);
        let ram_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| parse_meminfo_kb(&text))
            .map(|kb| kb / 1024)
            .unwrap_or(1024);
        let gpus = if want_gpus { gpu::detect()? } else { Vec::new() };
        Ok(Self { cpu: cores * 1000, ram_mb, disk_mb: free_disk_mb(data_dir).unwrap_or(0), gpus })
    }

    /// One slot's resources for `count` slots: the given values, or the machine's share
    /// (all cores, 80% of RAM, 80% of free disk, divided by `count`). VRAM is the smallest
    /// GPU's. Fails if the slots together need more than the machine has.
    pub fn slot(&self, count: u32, cpu: u64, ram_mb: u64, gpus: u32) -> Result<Resources, OverOffer> {
        let n = u64::from(count.max(1));
        let cpu = if cpu == 0 { self.cpu / n } else { cpu };
        let ram_mb = if ram_mb == 0 { self.ram_mb * 8 / 10 / n } else { ram_mb };
        let over = |what: String, has: String| OverOffer { count, what, has };
        if cpu * n > self.cpu {
            return Err(over(format!("{cpu} milli-CPU"), format!("{} milli-CPU", self.cpu)));
        }
        if ram_mb * n > self.ram_mb {
            return Err(over(format!("{ram_mb} MB RAM"), format!("{} MB RAM", self.ram_mb)));
        }
        if u64::from(gpus) * n > self.gpus.len() as u64 {
            return Err(over(format!("{gpus} GPU(s)"), format!("{} GPU(s)", self.gpus.len())));
        }
        let vram_mb = if gpus == 0 { 0 } else { self.gpus.iter().map(|g| g.vram_mb).min().unwrap_or(0) };
        Ok(Resources { cpu, ram_mb, gpus, vram_mb, disk_mb: self.disk_mb * 8 / 10 / n })
    }
}

fn parse_meminfo_kb(text: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix("MemTotal:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn free_disk_mb(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut dir = path.to_path_buf();
    while !dir.exists() {
        dir = dir.parent()?.to_path_buf();
    }
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64) / (1 << 20))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine { cpu: 4000, ram_mb: 8000, disk_mb: 10_000, gpus: vec![] }
    }

    #[test]
    fn defaults_share_the_machine() {
        let s = machine().slot(2, 0, 0, 0).unwrap();
        assert_eq!((s.cpu, s.ram_mb, s.gpus, s.disk_mb), (2000, 3200, 0, 4000));
        let s = machine().slot(1, 500, 100, 0).unwrap();
        assert_eq!((s.cpu, s.ram_mb), (500, 100));
    }

    #[test]
    fn over_offers_say_what_the_machine_has() {
        let e = machine().slot(3, 2000, 0, 0).unwrap_err().to_string();
        assert!(e.contains("3 slot(s) of 2000 milli-CPU") && e.contains("4000 milli-CPU in all"), "{e}");
        let e = machine().slot(1, 0, 9000, 0).unwrap_err().to_string();
        assert!(e.contains("8000 MB RAM"), "{e}");
        let e = machine().slot(1, 0, 0, 1).unwrap_err().to_string();
        assert!(e.contains("0 GPU(s)"), "{e}");
    }

    #[test]
    fn meminfo_parses() {
        assert_eq!(parse_meminfo_kb("MemFree: 1 kB\nMemTotal:  16384000 kB\n"), Some(16_384_000));
        assert!(Machine::detect(Path::new("/tmp/none/here"), false).unwrap().disk_mb > 0);
    }
}
