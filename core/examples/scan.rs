//! Scans a binary and prints its table sizes: for profiling the core without Python.
//!
//!     cargo run --release --no-default-features --example scan -- vmlinux

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: scan BINARY");
        std::process::exit(2);
    };
    let opts = patchscope_core::scan::Options {
        path: path.into(),
        debug_file: None,
        debug_roots: vec!["/usr/lib/debug".into()],
    };
    let t = std::time::Instant::now();
    match patchscope_core::scan::scan(&opts) {
        Ok(s) => {
            for (name, table) in &s.tables {
                println!("{name}: {}", table.rows());
            }
            println!("{:.3} s", t.elapsed().as_secs_f64());
        }
        Err(e) => {
            eprintln!("scan: {e}");
            std::process::exit(1);
        }
    }
}
