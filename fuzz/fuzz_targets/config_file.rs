//! Any bytes as the config file: `config::load` must return settings or a located error, never
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;
use trademind::config::{FlagOverrides, load};

static FILE: OnceLock<PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let path = FILE.get_or_init(|| {
        std::env::temp_dir().join(format!("trademind-fuzz-{}.toml", std::process::id()))
    });
    if std::fs::write(path, data).is_err() {
        return;
    }
    let _ = load(Some(path), &[], &FlagOverrides::default());
});
