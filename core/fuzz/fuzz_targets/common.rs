//! What both fuzz targets share: a private scratch file per process, and the panic policy.
//!
//! The core runs each DWARF unit under `catch_unwind` on purpose (a unit that panics becomes
//! a row with an `error`), but libfuzzer-sys installs a panic hook that aborts on *any* panic,
//! caught or not. By default the hook is replaced here so that only a panic escaping
//! `Binary::open` or `scan` (or a hang / OOM) counts as a crash; a contained panic is reported once per
//! location on stderr. Set `PATCHSCOPE_FUZZ_STRICT=1` to keep libfuzzer's abort-on-any-panic
//! hook and have contained panics reported as crashes too.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, OnceLock};

use patchscope_core::binary::Binary;

/// `input.elf` in a directory of this process's own under the temp dir. A directory of its
/// own keeps debuglink / altlink look-ups (relative to the binary's directory) away from
/// other processes' files; both are removed after each input.
fn scratch_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| std::env::temp_dir().join(format!("patchscope-fuzz-{}", std::process::id())).join("input.elf"))
}

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("PATCHSCOPE_FUZZ_STRICT").is_some() {
            return; // keep libfuzzer-sys's abort-on-any-panic hook
        }
        let seen: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
        std::panic::set_hook(Box::new(move |info| {
            let at = info.location().map(|l| l.to_string()).unwrap_or_default();
            let report = format!(
                "panic at {at} on thread {:?}: {}\n{}",
                std::thread::current().name().unwrap_or("?"),
                payload_str(info.payload()),
                std::backtrace::Backtrace::force_capture()
            );
            if seen.lock().map(|mut s| s.insert(at.clone())).unwrap_or(false) {
                eprintln!("patchscope-fuzz: (contained unless reported below) {report}");
            }
            if let Ok(mut last) = LAST_PANIC.lock() {
                *last = Some(report);
            }
        }));
    });
}

fn payload_str(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "<non-string payload>".into())
}

/// Writes `bytes` to the scratch file and scans it. Aborts (a crash for libFuzzer) if a panic
/// escapes `Binary::open` or `scan`; an `Err` is a fine answer. Also checks the result's invariants.
pub fn scan_bytes(bytes: &[u8]) {
    install_hook();
    let path = scratch_path();
    let dir = path.parent().unwrap();
    std::fs::create_dir_all(dir).expect("create scratch dir");
    std::fs::write(path, bytes).expect("write scratch file");
    let result = catch_unwind(AssertUnwindSafe(|| Binary::open(path, None, &[])?.scan()));
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_dir(dir);
    match result {
        Ok(Ok(s)) => check(&s),
        Ok(Err(e)) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "error message not one line: {msg:?}");
        }
        Err(p) => {
            eprintln!("patchscope-fuzz: PANIC ESCAPED Binary::open/scan: {}", payload_str(&*p));
            if let Ok(Some(last)) = LAST_PANIC.lock().map(|l| l.clone()) {
                eprintln!("patchscope-fuzz: last panic report: {last}");
            }
            std::process::abort();
        }
    }
}

/// Invariants of a successful scan: columns of one table have equal lengths and one type,
/// every string index is inside the pool, and the pool's offsets are well formed.
fn check(s: &patchscope_core::table::Scan) {
    use patchscope_core::table::Chunk;
    let n_strings = s.string_offsets.len().saturating_sub(1);
    assert!(!s.string_offsets.is_empty());
    assert_eq!(*s.string_offsets.last().unwrap() as usize, s.string_data.len());
    for (name, t) in &s.tables {
        let rows = t.rows();
        for (col, c) in &t.columns {
            assert_eq!(c.len(), rows, "{name}.{col}: ragged column");
            assert!(c.chunks.iter().all(|ch| ch.dtype() == c.dtype()), "{name}.{col}: chunks of mixed types");
            for ch in &c.chunks {
                if let Chunk::Str(v) = ch {
                    assert!(v.iter().all(|&i| (i as usize) < n_strings), "{name}.{col}: string index out of the pool");
                }
            }
        }
    }
}
