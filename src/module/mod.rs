//! Modules: versioned descriptions of a job (`module.toml`), their inputs, and the job
//! spec they resolve to. Start at [`resolve::Resolver::resolve`] and [`Module::job_spec`].
//!
//! Inputs never meet a shell: an argv element or env value that uses an input must be
//! exactly `{{Name}}`, and is replaced by the input's value as a whole.

pub mod resolve;

use crate::types::{JobSpec, ModuleRef, NetworkPolicy, Resources};
use regex::Regex;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Input values longer than this are refused unless the module sets `max_len`.
pub const DEFAULT_MAX_INPUT_LEN: usize = 4096;

/// Errors in reading a module or applying inputs; each names the module or input.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// No module of that name.
    #[error(
        "unknown module `{name}`; built-in modules: {known}. A path to a module directory or a git+URL#REF works too"
    )]
    Unknown {
        /// What was asked for.
        name: String,
        /// The built-in names.
        known: String,
    },
    /// The module file is malformed.
    #[error("module {source_name} is invalid: {reason}")]
    Invalid {
        /// Where it came from.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading or fetching the module failed.
    #[error("cannot load module {source_name}: {reason}")]
    Load {
        /// Where it came from.
        source_name: String,
        /// What went wrong.
        reason: String,
    },
    /// `-i` was not `Key=Value`.
    #[error("input `{0}` is not Key=Value")]
    BadInputSyntax(String),
    /// An input the module does not declare.
    #[error("module `{module}` has no input `{input}`; its inputs: {known}")]
    UnknownInput {
        /// Module name.
        module: String,
        /// The input given.
        input: String,
        /// The declared inputs.
        known: String,
    },
    /// A required input is missing.
    #[error("module `{module}` needs input `{input}`: pass -i {input}=VALUE")]
    MissingInput {
        /// Module name.
        module: String,
        /// The input.
        input: String,
    },
    /// The value does not match the declared pattern.
    #[error("input `{input}` of module `{module}` does not match the pattern {pattern}")]
    PatternMismatch {
        /// Module name.
        module: String,
        /// The input.
        input: String,
        /// The pattern.
        pattern: String,
    },
    /// The value is too long.
    #[error("input `{input}` of module `{module}` is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Module name.
        module: String,
        /// The input.
        input: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// One declared input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputDecl {
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Value used when none is given.
    #[serde(default)]
    pub default: Option<String>,
    /// Whether a value must be given (only meaningful without a default).
    #[serde(default)]
    pub required: bool,
    /// Regular expression the whole value must match.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Longest value in bytes [default: 4096].
    #[serde(default)]
    pub max_len: Option<usize>,
}

/// The contents of `module.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleFile {
    /// Module name.
    pub name: String,
    /// Module version.
    pub version: String,
    /// One line about what it does.
    #[serde(default)]
    pub description: Option<String>,
    /// Container image.
    pub image: String,
    /// The command; elements may be `{{Input}}`.
    pub argv: Vec<String>,
    /// Environment; values may be `{{Input}}`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Declared inputs by name.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputDecl>,
    /// Resources the job needs.
    #[serde(default)]
    pub resources: Resources,
    /// Network access.
    #[serde(default)]
    pub network: NetworkPolicy,
    /// Wall-clock limit in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Paths under /outputs the module writes: a result without one of them is challenged.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Exit codes that mean success [default: 0 only]: a result with another is challenged.
    #[serde(default)]
    pub success_exit_codes: Vec<i64>,
    /// Run as root in the container [default: false, an unprivileged user]; only
    /// providers that allow it (`executor.allow_root`) take such jobs.
    #[serde(default)]
    pub run_as_root: bool,
}

fn default_timeout() -> u64 {
    300
}

/// A parsed, validated module.
#[derive(Debug, Clone)]
pub struct Module {
    /// The file's contents.
    pub file: ModuleFile,
    /// sha256 of the file's bytes, hex.
    pub hash: String,
    /// Where it came from (for messages).
    pub source_name: String,
    patterns: BTreeMap<String, Regex>,
}

/// Parses `-i Key=Value` arguments (the value may contain `=`).
pub fn parse_inputs<S: AsRef<str>>(args: &[S]) -> Result<BTreeMap<String, String>, ModuleError> {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            match a.split_once('=') {
                Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
                _ => Err(ModuleError::BadInputSyntax(a.to_string())),
            }
        })
        .collect()
}

fn template_name(s: &str) -> Option<&str> {
    s.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")).map(str::trim)
}

impl Module {
    /// Parses and validates module file `bytes`; `source_name` names it in errors.
    pub fn parse(bytes: &[u8], source_name: &str) -> Result<Self, ModuleError> {
        let invalid = |reason: String| ModuleError::Invalid { source_name: source_name.to_string(), reason };
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8".into()))?;
        let file: ModuleFile = toml::from_str(text).map_err(|e| invalid(e.message().to_string()))?;

        let name_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok(&file.name) {
            return Err(invalid(format!("name `{}` must be letters, digits, - _ or .", file.name)));
        }
        if file.version.is_empty() || file.image.is_empty() {
            return Err(invalid("version and image must not be empty".into()));
        }
        if file.argv.is_empty() {
            return Err(invalid("argv must name a command".into()));
        }
        if file.timeout_secs == 0 {
            return Err(invalid("timeout_secs must be at least 1".into()));
        }
        for value in file.argv.iter().chain(file.env.values()) {
            match template_name(value) {
                Some(input) if !file.inputs.contains_key(input) => {
                    return Err(invalid(format!("`{value}` uses undeclared input `{input}`")));
                }
                None if value.contains("{{") => {
                    return Err(invalid(format!(
                        "`{value}`: an input must be a whole argv element or env value, exactly {{{{Name}}}}"
                    )));
                }
                _ => {}
            }
        }
        for out in &file.outputs {
            let p = std::path::Path::new(out);
            if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                return Err(invalid(format!("output `{out}` must be a relative path under /outputs")));
            }
        }
        if let Some(name) = file.env.keys().find(|k| crate::types::is_reserved_env(k)) {
            return Err(invalid(format!(
                "env `{name}` is reserved: the provider sets NVIDIA_* variables to give a job exactly its GPUs"
            )));
        }
        if let Some(code) = file.success_exit_codes.iter().find(|c| !(0..=255).contains(*c)) {
            return Err(invalid(format!("success exit code {code} is not an exit code (0 to 255)")));
        }
        let mut patterns = BTreeMap::new();
        for (name, decl) in &file.inputs {
            if let Some(p) = &decl.pattern {
                let re = Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| invalid(format!("input `{name}` has a bad pattern: {e}")))?;
                patterns.insert(name.clone(), re);
            }
        }
        let hash = hex::encode(Sha256::digest(bytes));
        Ok(Self { file, hash, source_name: source_name.to_string(), patterns })
    }

    /// Checks `inputs` against the declarations and returns the job spec.
    pub fn job_spec(&self, inputs: &BTreeMap<String, String>) -> Result<JobSpec, ModuleError> {
        let f = &self.file;
        let module = || f.name.clone();
        for key in inputs.keys() {
            if !f.inputs.contains_key(key) {
                let known = if f.inputs.is_empty() {
                    "none".to_string()
                } else {
                    f.inputs.keys().cloned().collect::<Vec<_>>().join(", ")
                };
                return Err(ModuleError::UnknownInput { module: module(), input: key.clone(), known });
            }
        }
        let mut values = BTreeMap::new();
        for (name, decl) in &f.inputs {
            let value = match (inputs.get(name), &decl.default) {
                (Some(v), _) => v.clone(),
                (None, Some(d)) => d.clone(),
                (None, None) if decl.required => {
                    return Err(ModuleError::MissingInput { module: module(), input: name.clone() })
                }
                (None, None) => String::new(),
            };
            let max = decl.max_len.unwrap_or(DEFAULT_MAX_INPUT_LEN);
            if value.len() > max {
                return Err(ModuleError::TooLong { module: module(), input: name.clone(), len: value.len(), max });
            }
            if let Some(re) = self.patterns.get(name) {
                if !re.is_match(&value) {
                    let pattern = decl.pattern.clone().unwrap_or_default();
                    return Err(ModuleError::PatternMismatch { module: module(), input: name.clone(), pattern });
                }
            }
            values.insert(name.clone(), value);
        }
        let fill = |s: &String| match template_name(s) {
            Some(input) => values.get(input).cloned().unwrap_or_default(),
            None => s.clone(),
        };
        Ok(JobSpec {
            module: ModuleRef { name: f.name.clone(), version: f.version.clone(), hash: self.hash.clone() },
            image: f.image.clone(),
            argv: f.argv.iter().map(fill).collect(),
            env: f.env.iter().map(|(k, v)| (k.clone(), fill(v))).collect(),
            resources: f.resources,
            network: f.network,
            timeout_secs: f.timeout_secs,
            outputs: f.outputs.clone(),
            success_exit_codes: f.success_exit_codes.clone(),
            run_as_root: f.run_as_root,
        })
    }

    /// Whether `spec` is what this module makes of some inputs: the inputs are read back from
    /// the spec's argv and env where the module has `{{Name}}`, checked like any inputs, and
    /// the spec this module makes of them must equal `spec` in every field (module name,
    /// version and file hash, image, literal argv and env, resources, network, timeout,
    /// outputs, success codes). Says how it differs.
    pub fn admits(&self, spec: &JobSpec) -> Result<(), String> {
        let f = &self.file;
        let id = format!("{}@{}", f.name, f.version);
        if spec.argv.len() != f.argv.len() {
            return Err(format!("its argv has {} elements, module {id} makes {}", spec.argv.len(), f.argv.len()));
        }
        let mut inputs: BTreeMap<String, String> = BTreeMap::new();
        let mut read = |template: &String, value: Option<&String>| -> Result<(), String> {
            let Some(name) = template_name(template) else { return Ok(()) };
            let value = value.ok_or_else(|| format!("it lacks the value of input `{name}`"))?;
            match inputs.insert(name.to_string(), value.clone()) {
                Some(before) if before != *value => Err(format!("input `{name}` has two different values")),
                _ => Ok(()),
            }
        };
        for (template, value) in f.argv.iter().zip(&spec.argv) {
            read(template, Some(value))?;
        }
        for (key, template) in &f.env {
            read(template, spec.env.get(key))?;
        }
        let made = self.job_spec(&inputs).map_err(|e| e.to_string())?;
        if made != *spec {
            return Err(format!("it is not what module {id} (sha256 {}) makes of its inputs", self.hash));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COW: &str = r#"
name = "cowsay"
version = "1.0.0"
image = "dcn.local/cowsay:1.0"
argv = ["/usr/games/cowsay", "{{Message}}"]
env = { MOOD = "{{Mood}}", FIXED = "x" }
[inputs.Message]
required = true
max_len = 40
[inputs.Mood]
default = "happy"
pattern = "happy|sad"
"#;

    fn cow() -> Module {
        Module::parse(COW.as_bytes(), "test").unwrap()
    }

    fn inputs(pairs: &[&str]) -> BTreeMap<String, String> {
        parse_inputs(pairs).unwrap()
    }

    #[test]
    fn a_spec_is_admitted_only_as_the_module_makes_it() {
        let m = Module::parse(COW.as_bytes(), "test").unwrap();
        let good = m.job_spec(&parse_inputs(&["Message=moo"]).unwrap()).unwrap();
        assert_eq!(m.admits(&good), Ok(()));
        let differs = |change: &dyn Fn(&mut JobSpec)| {
            let mut s = good.clone();
            change(&mut s);
            m.admits(&s).unwrap_err()
        };
        assert!(differs(&|s| s.image = "dcn.local/evil:1".into()).contains("not what module cowsay@1.0.0"));
        assert!(differs(&|s| s.argv[0] = "/bin/sh".into()).contains("not what module"));
        assert!(differs(&|s| s.argv.push("-c".into())).contains("argv has 3 elements"));
        assert!(differs(&|s| s.resources.ram_mb = 1).contains("not what module"));
        assert!(differs(&|s| s.module.hash = "00".into()).contains("not what module"));
        assert!(differs(&|s| {
            s.env.insert("LD_PRELOAD".into(), "/x".into());
        })
        .contains("not what module"));
        // An input value the module's checks refuse is refused here too.
        assert!(differs(&|s| s.argv[1] = "x".repeat(DEFAULT_MAX_INPUT_LEN + 1)).contains("more than"));
    }

    #[test]
    fn inputs_land_whole_and_verbatim() {
        let evil = "moo\"; rm -rf / #\n$(id)";
        let spec = cow().job_spec(&[("Message".to_string(), evil.to_string())].into()).unwrap();
        assert_eq!(spec.argv, vec!["/usr/games/cowsay".to_string(), evil.to_string()]);
        assert_eq!(spec.env["MOOD"], "happy");
        assert_eq!(spec.env["FIXED"], "x");
        assert_eq!(parse_inputs(&["a=b=c"]).unwrap()["a"], "b=c");
    }

    #[test]
    fn every_bad_input_names_itself() {
        let err = |i: &[&str]| cow().job_spec(&inputs(i)).unwrap_err().to_string();
        assert!(err(&["Message=hi", "Colour=red"]).contains("has no input `Colour`"));
        assert!(err(&[]).contains("needs input `Message`: pass -i Message=VALUE"));
        assert!(err(&["Message=hi", "Mood=angry"]).contains("input `Mood` of module `cowsay` does not match"));
        assert!(
            err(&[&format!("Message={}", "x".repeat(41))]).contains("input `Message` of module `cowsay` is 41 bytes")
        );
        assert!(parse_inputs(&["novalue"]).unwrap_err().to_string().contains("`novalue` is not Key=Value"));
        assert!(parse_inputs(&["=v"]).is_err());
    }

    #[test]
    fn pattern_must_match_the_whole_value() {
        assert!(cow().job_spec(&inputs(&["Message=m", "Mood=happyish"])).is_err());
        assert!(cow().job_spec(&inputs(&["Message=m", "Mood=sad"])).is_ok());
    }

    #[test]
    fn malformed_modules_are_refused() {
        let bad = |text: &str| Module::parse(text.as_bytes(), "t").unwrap_err().to_string();
        let base = "name = \"m\"\nversion = \"1\"\nimage = \"i\"\n";
        assert!(
            bad(&format!("{base}argv = [\"echo\", \"--m={{{{X}}}}\"]\n[inputs.X]\n")).contains("whole argv element")
        );
        assert!(bad(&format!("{base}argv = [\"{{{{Y}}}}\"]\n")).contains("undeclared input `Y`"));
        assert!(bad(&format!("{base}argv = []\n")).contains("argv must name a command"));
        assert!(bad(&format!("{base}argv = [\"a\"]\noutputs = [\"../x\"]\n")).contains("relative path"));
        assert!(bad(&format!("{base}argv = [\"a\"]\nsuccess_exit_codes = [0, 256]\n")).contains("0 to 255"));
        assert!(bad(&format!("{base}argv = [\"a\"]\nshell = true\n")).contains("unknown field"));
        assert!(bad(&format!("{base}argv = [\"a\"]\n[inputs.X]\npattern = \"(\"\n")).contains("bad pattern"));
    }

    #[test]
    fn module_hash_is_the_file_hash() {
        assert_eq!(cow().hash, hex::encode(Sha256::digest(COW.as_bytes())));
    }
}
