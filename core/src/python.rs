//! The `patchscope._core` module: a thin binding that turns a [`Scan`] into Python bytes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::error::Error;
use crate::scan::{identify as identify_binary, scan as scan_binary, Options, Scan};

create_exception!(_core, CoreError, pyo3::exceptions::PyException, "The binary cannot be read as asked.");

fn options(path: PathBuf, debug_file: Option<PathBuf>, debug_roots: Option<Vec<PathBuf>>) -> Options {
    Options { path, debug_file, debug_roots: debug_roots.unwrap_or_else(|| vec![PathBuf::from("/usr/lib/debug")]) }
}

/// Runs `f` without the GIL, turning a panic into an error rather than a Python
/// `PanicException`: bad input must never crash the caller.
fn guarded<T: Send>(
    py: Python<'_>,
    opts: &Options,
    f: impl FnOnce(&Options) -> crate::error::Result<T> + Send,
) -> PyResult<T> {
    py.detach(|| {
        catch_unwind(AssertUnwindSafe(|| f(opts)))
            .unwrap_or_else(|_| Err(Error::new(format!("{}: internal error while reading", opts.path.display()))))
    })
    .map_err(|e| CoreError::new_err(e.0))
}

/// Which files a scan would read: `{"build_id", "debug_file", "debug_build_id"}`.
#[pyfunction]
#[pyo3(signature = (path, debug_file=None, debug_roots=None))]
fn identify(
    py: Python<'_>,
    path: PathBuf,
    debug_file: Option<PathBuf>,
    debug_roots: Option<Vec<PathBuf>>,
) -> PyResult<Py<PyDict>> {
    let opts = options(path, debug_file, debug_roots);
    let found = guarded(py, &opts, identify_binary)?;
    let d = PyDict::new(py);
    for (k, v) in found {
        d.set_item(k, v)?;
    }
    Ok(d.unbind())
}

/// Scans one binary. Returns `{"info": {..}, "strings": (offsets, data), "tables":
/// {name: {column: (dtype, bytes)}}}`; string columns have dtype `"str"` and index `strings`.
#[pyfunction]
#[pyo3(signature = (path, debug_file=None, debug_roots=None))]
fn scan(
    py: Python<'_>,
    path: PathBuf,
    debug_file: Option<PathBuf>,
    debug_roots: Option<Vec<PathBuf>>,
) -> PyResult<Py<PyDict>> {
    let opts = options(path, debug_file, debug_roots);
    let found = guarded(py, &opts, scan_binary)?;
    to_python(py, found)
}

/// `u64` columns from Python: the bytes of a NumPy `uint64` array (`.tobytes()`), or a list.
#[derive(FromPyObject)]
enum U64s {
    Raw(pyo3::pybacked::PyBackedBytes),
    List(Vec<u64>),
}

impl U64s {
    fn values(self) -> crate::error::Result<Vec<u64>> {
        match self {
            U64s::Raw(b) => crate::code::u64s_from_bytes(&b),
            U64s::List(v) => Ok(v),
        }
    }
}

/// Machine-code facts of function ranges: `{"info", "strings", "tables": {"code_ranges",
/// "code_events"}}` as from `scan` (kinds and flags: patchscope_core::code).
#[pyfunction]
#[pyo3(signature = (path, function_ids, lows, highs, debug_file=None))]
fn code_facts(
    py: Python<'_>,
    path: PathBuf,
    function_ids: U64s,
    lows: U64s,
    highs: U64s,
    debug_file: Option<PathBuf>,
) -> PyResult<Py<PyDict>> {
    let opts = options(path, debug_file, None);
    let found = guarded(py, &opts, |o| {
        let (ids, lows, highs) = (function_ids.values()?, lows.values()?, highs.values()?);
        crate::code::facts(&o.path, o.debug_file.as_deref(), &ids, &lows, &highs)
    })?;
    to_python(py, found)
}

/// The instructions of `[low, high)`: table `insns` (address, size, kind, target, extra, text, target_name).
#[pyfunction]
#[pyo3(signature = (path, low, high, debug_file=None))]
fn instructions(
    py: Python<'_>,
    path: PathBuf,
    low: u64,
    high: u64,
    debug_file: Option<PathBuf>,
) -> PyResult<Py<PyDict>> {
    let opts = options(path, debug_file, None);
    let found = guarded(py, &opts, |o| crate::code::instructions(&o.path, o.debug_file.as_deref(), low, high))?;
    to_python(py, found)
}

/// The variables of concrete functions and inline sites, by DIE (`scopes`: a list, or the
/// bytes of a `uint64` array): tables `variables` and `blocks` (patchscope_core::dwarf::scope),
/// info `scopes`, `found` (the rest named no such DIE), `errors`.
#[pyfunction]
#[pyo3(signature = (path, scopes, debug_file=None, debug_roots=None))]
fn scope_variables(
    py: Python<'_>,
    path: PathBuf,
    scopes: U64s,
    debug_file: Option<PathBuf>,
    debug_roots: Option<Vec<PathBuf>>,
) -> PyResult<Py<PyDict>> {
    let opts = options(path, debug_file, debug_roots);
    let found = guarded(py, &opts, |o| crate::scan::variables(o, &scopes.values()?))?;
    to_python(py, found)
}

/// For each `(starts[i], addresses[i])`, the instruction holding the address when decoding
/// linearly from the start: table `probe_sites` (patchscope_core::code::probe_sites).
#[pyfunction]
#[pyo3(signature = (path, starts, addresses, debug_file=None))]
fn probe_sites(
    py: Python<'_>,
    path: PathBuf,
    starts: U64s,
    addresses: U64s,
    debug_file: Option<PathBuf>,
) -> PyResult<Py<PyDict>> {
    let opts = options(path, debug_file, None);
    let found = guarded(py, &opts, |o| {
        crate::code::probe_sites(&o.path, o.debug_file.as_deref(), &starts.values()?, &addresses.values()?)
    })?;
    to_python(py, found)
}

/// Position-independent fingerprints of function ranges: table `code_fingerprints`
/// (function_id, low, high, fingerprint), one row per range given, in order; the first range
/// of each id is the function's entry (patchscope_core::code::fingerprint).
#[pyfunction]
#[pyo3(signature = (path, function_ids, lows, highs, debug_file=None))]
fn code_fingerprints(
    py: Python<'_>,
    path: PathBuf,
    function_ids: U64s,
    lows: U64s,
    highs: U64s,
    debug_file: Option<PathBuf>,
) -> PyResult<Py<PyDict>> {
    let opts = options(path, debug_file, None);
    let found = guarded(py, &opts, |o| {
        let (ids, lows, highs) = (function_ids.values()?, lows.values()?, highs.values()?);
        crate::code::fingerprint::fingerprints(&o.path, o.debug_file.as_deref(), &ids, &lows, &highs)
    })?;
    to_python(py, found)
}

/// What the fingerprint of `[low, high)` makes of each position-dependent field: table
/// `normal_form` (address, size, mask, how, name, offset); `info["fingerprint"]`.
#[pyfunction]
#[pyo3(signature = (path, low, high, entry=true, debug_file=None))]
fn code_normal_form(
    py: Python<'_>,
    path: PathBuf,
    low: u64,
    high: u64,
    entry: bool,
    debug_file: Option<PathBuf>,
) -> PyResult<Py<PyDict>> {
    let opts = options(path, debug_file, None);
    let found = guarded(py, &opts, |o| {
        crate::code::fingerprint::normal_form(&o.path, o.debug_file.as_deref(), low, high, entry)
    })?;
    to_python(py, found)
}

fn to_python(py: Python<'_>, s: Scan) -> PyResult<Py<PyDict>> {
    let out = PyDict::new(py);
    let info = PyDict::new(py);
    for (k, v) in &s.info {
        info.set_item(k, v)?;
    }
    out.set_item("info", info)?;
    let offsets = crate::table::Chunk::I64(s.string_offsets);
    out.set_item("strings", (PyBytes::new(py, offsets.bytes()), PyBytes::new(py, &s.string_data)))?;
    let tables = PyDict::new(py);
    for (name, table) in &s.tables {
        let cols = PyDict::new(py);
        for (col, data) in &table.columns {
            let bytes = PyBytes::new_with(py, data.byte_len(), |buf| {
                data.write_bytes(buf);
                Ok(())
            })?;
            cols.set_item(col, (data.dtype(), bytes))?;
        }
        tables.set_item(name, cols)?;
    }
    out.set_item("tables", tables)?;
    Ok(out.unbind())
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    m.add_function(wrap_pyfunction!(identify, m)?)?;
    m.add_function(wrap_pyfunction!(code_facts, m)?)?;
    m.add_function(wrap_pyfunction!(instructions, m)?)?;
    m.add_function(wrap_pyfunction!(scope_variables, m)?)?;
    m.add_function(wrap_pyfunction!(probe_sites, m)?)?;
    m.add_function(wrap_pyfunction!(code_fingerprints, m)?)?;
    m.add_function(wrap_pyfunction!(code_normal_form, m)?)?;
    m.add("CoreError", m.py().get_type::<CoreError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
