//! Off-chain objects shared by every role: resources and the job spec an executor runs.
//! All are serde types with one canonical encoding (field order fixed, maps sorted), so
//! their hashes agree across machines.

use alloy::primitives::B256;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Compute resources: what a job needs or a machine offers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    /// CPU in thousandths of a core.
    pub cpu: u64,
    /// Memory in MB.
    pub ram_mb: u64,
    /// Number of GPUs.
    pub gpus: u32,
    /// VRAM per GPU in MB.
    pub vram_mb: u64,
    /// Scratch disk in MB.
    pub disk_mb: u64,
}

impl Resources {
    /// Whether `self` (an offer) covers `need`.
    pub fn covers(&self, need: &Resources) -> bool {
        self.cpu >= need.cpu
            && self.ram_mb >= need.ram_mb
            && self.gpus >= need.gpus
            && (need.gpus == 0 || self.vram_mb >= need.vram_mb)
            && self.disk_mb >= need.disk_mb
    }
}

/// Whether a job may use the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkPolicy {
    /// No network at all (loopback only). The default.
    #[default]
    None,
    /// Outbound network through Docker's bridge; a provider must allow it.
    Bridge,
}

/// The module a job came from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModuleRef {
    /// Module name.
    pub name: String,
    /// Module version.
    pub version: String,
    /// sha256 of the module file, hex.
    pub hash: String,
}

impl ModuleRef {
    /// Whether allow-list `entries` let this module run: an entry is a name (any version),
    /// `name@version`, or the sha256 of the module file (hex, optionally `sha256:`); no
    /// entry: any module. The solver matches and the provider signs by this one rule.
    pub fn allowed_by(&self, entries: &[String]) -> bool {
        entries.is_empty()
            || entries.iter().any(|e| {
                let e = e.trim();
                e == self.name
                    || e.split_once('@').is_some_and(|(n, v)| n == self.name && v == self.version)
                    || (!self.hash.is_empty()
                        && e.strip_prefix("sha256:").unwrap_or(e).eq_ignore_ascii_case(&self.hash))
            })
    }
}

/// Everything an executor needs to run a job, resolved from a module and its inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Where it came from.
    pub module: ModuleRef,
    /// Container image reference (`name:tag`, or `name@sha256:…` when pinned).
    pub image: String,
    /// The command, one element per argument; never run through a shell.
    pub argv: Vec<String>,
    /// Environment variables.
    pub env: BTreeMap<String, String>,
    /// Resources the job needs (and is limited to).
    pub resources: Resources,
    /// Network access.
    pub network: NetworkPolicy,
    /// Wall-clock limit in seconds.
    pub timeout_secs: u64,
    /// Paths under `/outputs` the module promises to write.
    pub outputs: Vec<String>,
    /// Exit codes the module calls success; empty: only 0. Left out of the encoding when
    /// empty, so specs from before it hash as they did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub success_exit_codes: Vec<i64>,
    /// Whether the job must run as root in its container; false: as the provider's
    /// unprivileged user (THREATS X2). A provider runs such a job only if it allows it
    /// (`executor.allow_root`). Left out of the encoding when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub run_as_root: bool,
}

/// How a job's `/outputs` is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputsFs {
    /// `loop` when this process is root, else `bind` (with a warning at start).
    #[default]
    Auto,
    /// A loop-mounted ext4 image of the job's size: the disk limit holds while it runs.
    Loop,
    /// A plain directory: measured after the job, not limited during it.
    Bind,
}

impl OutputsFs {
    /// What `Auto` means for a process that is root (`root`) or not.
    pub fn resolve_for(self, root: bool) -> Self {
        match self {
            Self::Auto if root => Self::Loop,
            Self::Auto => Self::Bind,
            other => other,
        }
    }
}

/// Whether `name` is an environment variable only the executor sets: the NVIDIA container
/// runtime reads `NVIDIA_*` to choose the GPUs a container sees (THREATS X5).
pub fn is_reserved_env(name: &str) -> bool {
    name.to_ascii_uppercase().starts_with("NVIDIA_")
}

/// The output a job that declares no `disk_mb` may leave, MiB: its bundle (exit code,
/// stdout, stderr and `/outputs`, headers included) holds at most this much.
pub const DEFAULT_OUTPUT_MB: u64 = 64;

impl JobSpec {
    /// The most bytes the job's result bundle may hold: its `disk_mb`, or
    /// [`DEFAULT_OUTPUT_MB`] when it declares none. A result over it is delivered as an
    /// error bundle by every party alike (`bundle::pack`), so the limit is part of the
    /// job, not of whoever runs it.
    pub fn output_limit_bytes(&self) -> u64 {
        let mb = if self.resources.disk_mb == 0 { DEFAULT_OUTPUT_MB } else { self.resources.disk_mb };
        mb.saturating_mul(1 << 20)
    }

    /// The canonical encoding: compact JSON in declaration order with sorted maps.
    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a job spec always serializes")
    }

    /// The content hash (sha256 of the canonical encoding) that goes into offers and deals.
    pub fn content_hash(&self) -> B256 {
        B256::from_slice(&Sha256::digest(self.canonical_json()))
    }

    /// Whether the module calls exit code `code` success.
    pub fn is_success(&self, code: i64) -> bool {
        if self.success_exit_codes.is_empty() {
            code == 0
        } else {
            self.success_exit_codes.contains(&code)
        }
    }

    /// The exit codes the module calls success, for messages (`0`, `0, 1`).
    pub fn success_codes_text(&self) -> String {
        if self.success_exit_codes.is_empty() {
            "0".into()
        } else {
            self.success_exit_codes.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> JobSpec {
        JobSpec {
            module: ModuleRef { name: "cowsay".into(), version: "1.0.0".into(), hash: "ab".into() },
            image: "dcn.local/cowsay:1.0".into(),
            argv: vec!["/usr/games/cowsay".into(), "moo".into()],
            env: [("B".to_string(), "2".to_string()), ("A".to_string(), "1".to_string())].into(),
            resources: Resources { cpu: 500, ram_mb: 64, ..Default::default() },
            network: NetworkPolicy::None,
            timeout_secs: 30,
            outputs: vec![],
            success_exit_codes: vec![],
            run_as_root: false,
        }
    }

    #[test]
    fn content_hash_is_stable_and_sensitive() {
        let a = spec();
        // Pinned value: changing the encoding breaks every deal made with the old one.
        assert_eq!(
            String::from_utf8(a.canonical_json()).unwrap(),
            r#"{"module":{"name":"cowsay","version":"1.0.0","hash":"ab"},"image":"dcn.local/cowsay:1.0","argv":["/usr/games/cowsay","moo"],"env":{"A":"1","B":"2"},"resources":{"cpu":500,"ram_mb":64,"gpus":0,"vram_mb":0,"disk_mb":0},"network":"none","timeout_secs":30,"outputs":[]}"#
        );
        assert_eq!(a.content_hash(), spec().content_hash());
        let mut b = spec();
        b.argv[1] = "moo ".into();
        assert_ne!(a.content_hash(), b.content_hash());
        // Success codes other than the default are part of the job.
        let c = JobSpec { success_exit_codes: vec![0, 1], ..spec() };
        assert!(String::from_utf8(c.canonical_json())
            .unwrap()
            .ends_with(r#""outputs":[],"success_exit_codes":[0,1]}"#));
        assert!(c.is_success(1) && !c.is_success(2) && a.is_success(0) && !a.is_success(137));
    }

    #[test]
    fn the_allow_list_takes_names_versions_and_hashes() {
        let m = ModuleRef { name: "cowsay".into(), version: "1.0".into(), hash: "ab12".into() };
        let allows = |entries: &[&str]| m.allowed_by(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>());
        assert!(allows(&[]));
        assert!(allows(&["cowsay"]) && allows(&["cowsay@1.0"]) && allows(&["ab12"]) && allows(&["sha256:AB12"]));
        assert!(!allows(&["cowsay@1.1"]) && !allows(&["other"]) && !allows(&["ab13"]) && !allows(&["cow"]));
    }

    #[test]
    fn covers_checks_every_dimension() {
        let offer = Resources { cpu: 2000, ram_mb: 1024, gpus: 1, vram_mb: 8000, disk_mb: 100 };
        assert!(offer.covers(&Resources { cpu: 2000, ram_mb: 1024, gpus: 1, vram_mb: 8000, disk_mb: 100 }));
        assert!(!offer.covers(&Resources { cpu: 2001, ..Default::default() }));
        assert!(!offer.covers(&Resources { gpus: 1, vram_mb: 9000, ..Default::default() }));
        assert!(offer.covers(&Resources { vram_mb: 9000, ..Default::default() }), "no GPU asked: VRAM moot");
    }
}
