//! A mapped file cut short under us. When another process truncates a file we have mapped,
//! the kernel answers the next read past its new end with SIGBUS, whose default action ends
//! the run with "Bus error" and a core dump. A copy would cost a vmlinux's 600 MB; a check
//! before every read is impossible (gimli reads the map directly). So the mapped ranges are
//! registered here, and a SIGBUS handler that finds the faulting address in one of them says
//! so in one line and exits with status 2: the run cannot go on, as the bytes it was reading
//! are gone. A SIGBUS at any other address is not ours: the handler puts back the action it
//! found (Python's faulthandler, say, or the default) and returns, so the faulting access runs
//! again under it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Once;

/// Files mapped at once: a binary, its debug file and its dwz file, a few binaries open at a
/// time from Python. A file mapped beyond this many is not guarded, which loses nothing but
/// the message.
const SLOTS: usize = 32;

/// One mapped range and its file's path (a leaked C string: a handler may not allocate, and
/// the path must outlive any signal that could name it). A slot is free when `end` is 0.
struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    path: AtomicPtr<libc::c_char>,
}

#[allow(clippy::declare_interior_mutable_const)] // only the array's initializer
const FREE: Slot =
    Slot { start: AtomicUsize::new(0), end: AtomicUsize::new(0), path: AtomicPtr::new(std::ptr::null_mut()) };
static MAPPED: [Slot; SLOTS] = [FREE; SLOTS];

/// The action SIGBUS had before ours: what a fault that is not ours goes back to.
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();
static INSTALL: Once = Once::new();
/// Set by the first thread to fault in a guarded map: the one that says so and ends the run.
static ENDING: AtomicBool = AtomicBool::new(false);

/// A registered mapping; dropping it (before the map is unmapped) unregisters it.
pub struct Guard(Option<usize>);

/// Registers `len` bytes at `start`, mapped from `path`.
pub fn guard(start: *const u8, len: usize, path: &Path) -> Guard {
    INSTALL.call_once(install);
    let path = CString::new(path.as_os_str().as_bytes()).unwrap_or_default().into_raw();
    for (i, slot) in MAPPED.iter().enumerate() {
        if slot.path.compare_exchange(std::ptr::null_mut(), path, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            slot.start.store(start as usize, Ordering::Release);
            slot.end.store(start as usize + len, Ordering::Release);
            return Guard(Some(i));
        }
    }
    // SAFETY: the pointer came from `into_raw` above and was never shared.
    drop(unsafe { CString::from_raw(path) });
    Guard(None)
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            let slot = &MAPPED[i];
            slot.end.store(0, Ordering::Release);
            // The path string is leaked on purpose: a handler running on another thread may
            // be reading it still. A few bytes per file opened.
            slot.path.store(std::ptr::null_mut(), Ordering::Release);
        }
    }
}

fn install() {
    // SAFETY: a plain sigaction with an async-signal-safe handler; PREVIOUS is written here,
    // once, before the handler can run, and only read by it.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::addr_of_mut!(PREVIOUS).cast());
    }
}

/// Async-signal-safe: atomics, `write` and `_exit` only.
extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    // A read past the end of a file's mapping is BUS_ADRERR; a SIGBUS sent by kill() has no
    // address at all.
    for slot in MAPPED.iter().filter(|_| code == libc::BUS_ADRERR) {
        let path = slot.path.load(Ordering::Acquire);
        if !path.is_null() && (slot.start.load(Ordering::Acquire)..slot.end.load(Ordering::Acquire)).contains(&addr) {
            if ENDING.swap(true, Ordering::AcqRel) {
                // Another thread faulted too and is saying it: one line, then the end.
                loop {
                    // SAFETY: pause(2) is async-signal-safe; _exit on the other thread ends us.
                    unsafe { libc::pause() };
                }
            }
            // SAFETY: a live slot's path is a NUL-terminated string never freed.
            let name = unsafe { std::ffi::CStr::from_ptr(path) }.to_bytes();
            say(&[
                b"patchscope: error: ",
                name,
                b": changed while being read (cut short or rewritten in place); run again\n",
            ]);
            // SAFETY: ends the process without running anything of the interrupted threads.
            unsafe { libc::_exit(2) };
        }
    }
    // SAFETY: puts back the action found at install time. A fault runs its access again
    // under it; a signal that was sent, not caused, is sent again (held until we return).
    unsafe {
        libc::sigaction(libc::SIGBUS, std::ptr::addr_of!(PREVIOUS).cast(), std::ptr::null_mut());
        if code <= 0 {
            libc::raise(libc::SIGBUS);
        }
    }
}

/// One write(2) of the parts joined (a path longer than the buffer is cut): a line that
/// nothing else written to stderr can split.
fn say(parts: &[&[u8]]) {
    let mut line = [0u8; 4096];
    let mut len = 0;
    for part in parts {
        let n = part.len().min(line.len() - len);
        line[len..len + n].copy_from_slice(&part[..n]);
        len += n;
    }
    // SAFETY: write(2) of a valid buffer; a short or failed write only loses the message.
    unsafe { libc::write(2, line.as_ptr().cast(), len) };
}
