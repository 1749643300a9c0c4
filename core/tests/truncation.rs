//! A mapped file cut short by another process while it is read: one line naming the file and
//! exit status 2, not a bus error. The fault ends the process, so the test runs itself again
//! as a child (the environment variable says which file the child maps and cuts).

use std::path::Path;
use std::process::Command;

use patchscope_core::elf::Mapped;

const CHILD: &str = "PATCHSCOPE_TRUNCATION_CHILD";

#[test]
fn a_mapped_file_cut_short_is_one_line_and_status_2() {
    if let Some(path) = std::env::var_os(CHILD) {
        map_cut_and_read(Path::new(&path));
        return;
    }
    let path = std::env::temp_dir().join(format!("patchscope-truncation-{}", std::process::id()));
    // Larger than what is read whole (64 MiB): mapped. Sparse, so nothing is written.
    std::fs::File::create(&path).unwrap().set_len((64 << 20) + 4096).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_mapped_file_cut_short_is_one_line_and_status_2", "--nocapture"])
        .env(CHILD, &path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let said: Vec<&str> = stderr.lines().filter(|l| l.starts_with("patchscope:")).collect();
    assert_eq!(
        said,
        [format!(
            "patchscope: error: {}: changed while being read (cut short or rewritten in place); run again",
            path.display()
        )]
    );
}

fn map_cut_and_read(path: &Path) {
    let mapped = Mapped::open(path).unwrap();
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(0).unwrap();
    mapped.crc32(); // reads past the file's new end: SIGBUS
    unreachable!("the read of a page past the end did not fault");
}

#[test]
fn a_sigbus_elsewhere_goes_to_the_action_found_before() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    if std::env::var_os(ELSEWHERE).is_some() {
        raise_after_another_handler();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_sigbus_elsewhere_goes_to_the_action_found_before", "--nocapture"])
        .env(ELSEWHERE, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "stderr: {stderr}");
    assert!(stderr.contains("previous handler") && !stderr.contains("changed while being read"), "{stderr}");
}

const ELSEWHERE: &str = "PATCHSCOPE_SIGBUS_ELSEWHERE";

/// A handler of SIGBUS (as Python's faulthandler installs one), then the guard over a mapped
/// file, then a SIGBUS no map explains: the first handler must get it.
fn raise_after_another_handler() -> ! {
    extern "C" fn previous(_: libc::c_int) {
        let said = b"previous handler\n";
        // SAFETY: write(2) and _exit are async-signal-safe.
        unsafe {
            libc::write(2, said.as_ptr().cast(), said.len());
            libc::_exit(7);
        }
    }
    // SAFETY: a plain handler for a signal this process raises itself.
    unsafe { libc::signal(libc::SIGBUS, previous as *const () as libc::sighandler_t) };
    let path = std::env::temp_dir().join(format!("patchscope-sigbus-{}", std::process::id()));
    std::fs::File::create(&path).unwrap().set_len((64 << 20) + 4096).unwrap();
    let _mapped = Mapped::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    // SAFETY: a signal at ourselves, which the handler above ends.
    unsafe { libc::raise(libc::SIGBUS) };
    unreachable!("SIGBUS was lost");
}
