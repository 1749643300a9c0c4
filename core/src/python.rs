//! The `patchscope._core` module: a thin binding over [`binary::Binary`] that turns each
//! answer ([`Scan`]) into Python bytes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use pyo3::create_exception;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple, PyType};

use crate::binary;
use crate::error::Error;
use crate::table::Scan;

create_exception!(_core, CoreError, pyo3::exceptions::PyException, "The binary cannot be read as asked.");

/// Runs `f` without the GIL, turning a panic into an error rather than a Python
/// `PanicException`: bad input must never crash the caller.
fn guarded<T: Send>(py: Python<'_>, path: &Path, f: impl FnOnce() -> crate::error::Result<T> + Send) -> PyResult<T> {
    py.detach(|| {
        catch_unwind(AssertUnwindSafe(f))
            .unwrap_or_else(|_| Err(Error::new(format!("{}: internal error while reading", path.display()))))
    })
    .map_err(|e| CoreError::new_err(e.0))
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

/// One binary, opened once with its debug file and dwz supplementary file (found under
/// `debug_roots`, `/usr/lib/debug` by default); every query reads the same files.
#[pyclass(frozen, module = "patchscope._core")]
struct Binary(binary::Binary);

#[pymethods]
impl Binary {
    #[new]
    #[pyo3(signature = (path, debug_file=None, debug_roots=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        debug_file: Option<PathBuf>,
        debug_roots: Option<Vec<PathBuf>>,
    ) -> PyResult<Self> {
        let roots = debug_roots.unwrap_or_else(|| vec![PathBuf::from("/usr/lib/debug")]);
        guarded(py, &path, || binary::Binary::open(&path, debug_file.as_deref(), &roots)).map(Binary)
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.0.path.clone()
    }

    /// The separate debug file, if any.
    #[getter]
    fn debug_file(&self) -> Option<PathBuf> {
        self.0.debug.as_ref().map(|d| d.map.path.clone())
    }

    /// How the debug file was found: `given`, `build-id under ROOT`, `debuglink beside the
    /// binary`, `debuglink in .debug/`, `debuglink under ROOT`.
    #[getter]
    fn debug_file_found_by(&self) -> Option<&str> {
        self.0.debug.as_ref().map(|d| d.how.as_str())
    }

    /// The dwz supplementary file, if any.
    #[getter]
    fn sup_file(&self) -> Option<PathBuf> {
        self.0.sup.as_ref().map(|s| s.map.path.clone())
    }

    /// How the supplementary file was found: `altlink path` or `build-id under ROOT`.
    #[getter]
    fn sup_file_found_by(&self) -> Option<&str> {
        self.0.sup.as_ref().map(|s| s.how.as_str())
    }

    #[getter]
    fn build_id(&self) -> PyResult<Option<String>> {
        self.0.build_id().map_err(|e| CoreError::new_err(e.0))
    }

    #[getter]
    fn debug_build_id(&self) -> Option<String> {
        self.0.debug_build_id()
    }

    /// What the cache key needs besides the content: the build-ids and paths of the three files.
    fn identify(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || self.0.identify())?;
        let d = PyDict::new(py);
        for (k, v) in found {
            d.set_item(k, v)?;
        }
        Ok(d.unbind())
    }

    /// The CRC-32 of the three files' bytes (hex, joined by `-`), read in parallel.
    fn content(&self, py: Python<'_>) -> PyResult<String> {
        guarded(py, &self.0.path, || Ok(self.0.content()))
    }

    /// Every table. Returns `{"info": {..}, "strings": (offsets, data), "tables": {name:
    /// {column: (dtype, bytes)}}}`; string columns have dtype `"str"` and index `strings`.
    fn scan(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || self.0.scan())?;
        to_python(py, found)
    }

    /// The variables of concrete functions and inline sites, by DIE (`scopes`: a list, or the
    /// bytes of a `uint64` array): tables `variables` and `blocks` (patchscope_core::dwarf::scope),
    /// info `scopes`, `found` (the rest named no such DIE), `errors`.
    fn variables(&self, py: Python<'_>, scopes: U64s) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || self.0.variables(&scopes.values()?))?;
        to_python(py, found)
    }

    /// What each function returns, by subprogram DIE: table `results` (class:
    /// patchscope_core::dwarf::result), in the order given.
    fn result_classes(&self, py: Python<'_>, functions: U64s) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || self.0.result_classes(&functions.values()?))?;
        to_python(py, found)
    }

    /// Machine-code facts of function ranges: tables `code_ranges` and `code_events`
    /// (kinds and flags: patchscope_core::code).
    fn code_facts(&self, py: Python<'_>, function_ids: U64s, lows: U64s, highs: U64s) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || {
            self.0.code_facts(&function_ids.values()?, &lows.values()?, &highs.values()?)
        })?;
        to_python(py, found)
    }

    /// The instructions of `[low, high)`: table `insns` (address, size, kind, target, extra,
    /// text, target_name).
    fn instructions(&self, py: Python<'_>, low: u64, high: u64) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || self.0.instructions(low, high))?;
        to_python(py, found)
    }

    /// The instructions of many ranges, each decoded from its low end: table `insns` as
    /// `instructions` gives it, plus `range` (the index of the range in `lows`/`highs`).
    fn instructions_of(&self, py: Python<'_>, lows: U64s, highs: U64s) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || self.0.instructions_of(&lows.values()?, &highs.values()?))?;
        to_python(py, found)
    }

    /// For each `(starts[i], addresses[i])`, the instruction holding the address when
    /// decoding linearly from the start: table `probe_sites` (patchscope_core::code::probe_sites).
    fn probe_sites(&self, py: Python<'_>, starts: U64s, addresses: U64s) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || self.0.probe_sites(&starts.values()?, &addresses.values()?))?;
        to_python(py, found)
    }

    /// For each query `(ids[q], addresses[q], regs[q])`: whether DWARF register `regs[q]` is
    /// read at `addresses[q]` before it is overwritten, in the function whose ranges are the
    /// rows of `(function_ids, lows, highs)` with that id, which returns `returns[id]` (a
    /// `_core.result`; an empty list: not known): table `liveness` (live, reader, writer,
    /// status; patchscope_core::code::liveness).
    #[allow(clippy::too_many_arguments)]
    fn liveness(
        &self,
        py: Python<'_>,
        function_ids: U64s,
        lows: U64s,
        highs: U64s,
        returns: U64s,
        ids: U64s,
        addresses: U64s,
        regs: U64s,
    ) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || {
            let (f, l, h) = (function_ids.values()?, lows.values()?, highs.values()?);
            self.0.liveness([&f, &l, &h], &returns.values()?, &ids.values()?, &addresses.values()?, &regs.values()?)
        })?;
        to_python(py, found)
    }

    /// Position-independent fingerprints of function ranges: table `code_fingerprints`
    /// (function_id, low, high, fingerprint), one row per range given, in order; the first
    /// range of each id is the function's entry (patchscope_core::code::fingerprint).
    fn fingerprints(&self, py: Python<'_>, function_ids: U64s, lows: U64s, highs: U64s) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || {
            self.0.fingerprints(&function_ids.values()?, &lows.values()?, &highs.values()?)
        })?;
        to_python(py, found)
    }

    /// What the fingerprint of `[low, high)` makes of each position-dependent field: table
    /// `normal_form` (address, size, mask, how, name, offset); `info["fingerprint"]`.
    #[pyo3(signature = (low, high, entry=true))]
    fn normal_form(&self, py: Python<'_>, low: u64, high: u64, entry: bool) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || self.0.normal_form(low, high, entry))?;
        to_python(py, found)
    }

    /// What dynamic linking names without symbols: table `plt_names` (address, name, got):
    /// PLT stubs (`got` 0) and GOT slots (`got` 1) by the symbol their relocation names.
    fn plt_names(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || self.0.plt_names())?;
        to_python(py, found)
    }

    /// Function addresses stored in the image's data: table `function_pointers` (at, value,
    /// section), every aligned word of an allocated non-code section holding a function's address.
    fn function_pointers(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let found = guarded(py, &self.0.path, || self.0.function_pointers())?;
        to_python(py, found)
    }

    fn __repr__(&self) -> String {
        format!("<patchscope._core.Binary {:?}>", self.0.path)
    }
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

/// `foo.isra.3.cold` → `foo.isra.cold`: a symbol name without the numbers a compiler gives
/// clones and statics (patchscope_core::elf::clone_shape, as the fingerprints name symbols).
#[pyfunction]
fn clone_shape(name: &str) -> String {
    String::from_utf8_lossy(&crate::elf::clone_shape(name.as_bytes())).into_owned()
}

/// `(size, crc32)` of each file, hashed in parallel with the GIL released; `None` for a
/// file that cannot be read. The cache checks its files against its manifest with it.
#[pyfunction]
fn crc32_files(py: Python<'_>, paths: Vec<std::path::PathBuf>) -> Vec<Option<(u64, u32)>> {
    py.detach(|| {
        let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
        crate::checksum::crc32_files(&refs)
    })
}

/// The core's groups of constants, each exported as a class of that name whose attributes
/// are the constants (`_core.kind.RETURN`): the values of the tables' coded columns.
const CONSTANTS: &[(&str, &[(&str, u64)])] = &[
    ("kind", crate::code::kind::ALL),
    ("flag", crate::code::flag::ALL),
    ("trap", crate::code::trap::ALL),
    ("status", crate::code::status::ALL),
    ("site_status", crate::code::site_status::ALL),
    ("how", crate::code::fingerprint::how::ALL),
    ("live_status", crate::code::liveness::live_status::ALL),
    ("live_query", crate::code::liveness::query::ALL),
    ("location_kind", crate::dwarf::location::kind::ALL),
    ("location_flag", crate::dwarf::location::flag::ALL),
    ("spflag", crate::dwarf::spflag::ALL),
    ("result", crate::dwarf::result::ALL),
    ("lineflag", crate::dwarf::lineflag::ALL),
    ("symkind", crate::elf::symkind::ALL),
    ("suffix", crate::elf::suffix::ALL),
];

fn add_group(m: &Bound<'_, PyModule>, name: &str, consts: &[(&str, u64)]) -> PyResult<()> {
    let py = m.py();
    let attrs = PyDict::new(py);
    for (k, v) in consts {
        attrs.set_item(k, v)?;
    }
    attrs.set_item("__module__", "patchscope._core")?;
    let group = py.get_type::<PyType>().call1((name, PyTuple::empty(py), attrs))?;
    m.add(name, group)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Binary>()?;
    m.add_function(wrap_pyfunction!(clone_shape, m)?)?;
    m.add_function(wrap_pyfunction!(crc32_files, m)?)?;
    for (name, consts) in CONSTANTS {
        add_group(m, name, consts)?;
    }
    m.add("NO_TARGET", crate::code::NO_TARGET)?;
    m.add("NO_DIE", crate::dwarf::NONE)?;
    m.add("SUP_BIT", crate::dwarf::SUP_BIT)?;
    m.add("NO_REG", crate::dwarf::location::NO_REG)?;
    m.add("CoreError", m.py().get_type::<CoreError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
