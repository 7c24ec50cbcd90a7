//! `dcn config show` and `dcn keys`, run as processes.

mod common;

use common::{bare_dcn, stderr};
use std::os::unix::fs::PermissionsExt;

const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

#[test]
fn config_show_applies_every_layer_and_redacts_secrets() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("dcn.toml");
    std::fs::write(
        &file,
        "network = \"testnet\"\n[networks.testnet]\nrpc_url = \"https://file.example/rpc\"\nchain_id = 11155111\n\
         [fund]\ntokens = \"7\"\n",
    )
    .unwrap();
    let out = bare_dcn(home.path())
        .args(["config", "show", "--config", file.to_str().unwrap()])
        .env("WEB3_PRIVATE_KEY", KEY)
        .env("WEB3_CHAIN_ID", "11155111")
        .env("DCN_FUND__ETH", "3")
        .env("WEB3_RPC_URL", "https://user:secretpw@env.example/v3/abcdefabcdefabcdefabcdef")
        .arg("--log-format")
        .arg("json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("network = \"testnet\""), "file layer:\n{text}");
    assert!(text.contains("tokens = \"7\""), "file layer:\n{text}");
    assert!(text.contains("eth = \"3\""), "DCN_ env layer:\n{text}");
    assert!(text.contains("log_format = \"json\""), "flag layer:\n{text}");
    assert!(text.contains("rpc_url = \"https://env.example/v3/<redacted>\""), "compat env, redacted:\n{text}");
    assert!(text.contains("private_key = \"<redacted>\""), "{text}");
    for leak in [&KEY[2..], "secretpw", "abcdefabcdefabcdefabcdef"] {
        assert!(!text.contains(leak), "{leak} leaked:\n{text}");
    }
    assert!(text.contains("chain_id = 11155111"), "{text}");
}

#[test]
fn config_show_without_any_file_gives_the_geth_defaults() {
    let home = tempfile::tempdir().unwrap();
    let out = bare_dcn(home.path()).args(["config", "show"]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("[resolved_network]\nname = \"geth\"\nrpc_url = \"http://127.0.0.1:8546/\"\nchain_id = 1337"),
        "{text}"
    );
    let missing = bare_dcn(home.path()).args(["config", "show", "--config", "/nope.toml"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("config file /nope.toml does not exist"), "{}", stderr(&missing));
}

#[test]
fn keys_new_writes_an_owner_only_key_file() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("provider.key");
    let out = bare_dcn(home.path()).args(["keys", "new", "--out", path.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let address = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let key = std::fs::read_to_string(&path).unwrap();
    assert!(!stderr(&out).contains(key.trim()), "key printed");

    // The file works as the configured key and gives the printed address.
    let shown = bare_dcn(home.path())
        .args(["keys", "address", "--network", "x", "--rpc-url", "http://127.0.0.1:1", "--chain-id", "1"])
        .env("DCN_KEYS__KEY_FILE", &path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), address, "{}", stderr(&shown));

    // Never overwrites an existing key.
    let again = bare_dcn(home.path()).args(["keys", "new", "--out", path.to_str().unwrap()]).output().unwrap();
    assert!(!again.status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), key);
}
