//! Scans a binary and prints its table sizes: for profiling the core without Python.
//!
//!     cargo run --release --no-default-features --example scan -- vmlinux

fn main() {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: scan BINARY");
        std::process::exit(2);
    };
    let t = std::time::Instant::now();
    let roots = ["/usr/lib/debug".into()];
    match patchscope_core::binary::Binary::open(path.as_ref(), None, &roots).and_then(|b| b.scan()) {
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
