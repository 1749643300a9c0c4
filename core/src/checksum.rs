//! CRC-32 of whole files, in parallel chunks: what the cache keys a binary by (its bytes, not
//! its mtime) and checks its own files against. CRC-32 catches a flipped byte or a torn write,
//! which is what a cache must survive; it is not a defence against a forger.

use std::fs::File;
use std::path::Path;

use rayon::prelude::*;

/// Chunks hashed on separate threads, then combined: a 600 MB file in a few tens of ms.
const CHUNK: usize = 8 << 20;

/// The CRC-32 of `bytes`, its chunks hashed in parallel.
pub fn crc32(bytes: &[u8]) -> u32 {
    combine(bytes.par_chunks(CHUNK).map(hash).collect())
}

/// The CRC-32 of a mapped file, each chunk's pages given back once hashed: reading a 600 MB
/// vmlinux through the map would otherwise add it all to the process's peak resident size.
pub fn crc32_map(map: &memmap2::Mmap) -> u32 {
    let parts = map
        .par_chunks(CHUNK)
        .enumerate()
        .map(|(i, c)| {
            let h = hash(c);
            // SAFETY: a read-only file mapping: its dropped pages are read again from the
            // file on the next access. The chunks are page-aligned (CHUNK is).
            let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, i * CHUNK, c.len()) };
            h
        })
        .collect();
    combine(parts)
}

fn hash(chunk: &[u8]) -> crc32fast::Hasher {
    let mut h = crc32fast::Hasher::new();
    h.update(chunk);
    h
}

fn combine(parts: Vec<crc32fast::Hasher>) -> u32 {
    let mut all = crc32fast::Hasher::new();
    for p in &parts {
        all.combine(p);
    }
    all.finalize()
}

/// The size and CRC-32 of a file, or `None` if it cannot be read.
pub fn crc32_file(path: &Path) -> Option<(u64, u32)> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len == 0 {
        return Some((0, crc32(&[])));
    }
    // SAFETY: read-only; a file truncated underneath is a cache entry being replaced, which
    // the caller then finds damaged or gone.
    let map = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    Some((len, crc32_map(&map)))
}

/// [`crc32_file`] of each path, the files in parallel.
pub fn crc32_files(paths: &[&Path]) -> Vec<Option<(u64, u32)>> {
    paths.par_iter().map(|p| crc32_file(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_combine_to_the_whole() {
        let bytes: Vec<u8> = (0..(CHUNK * 2 + 12345)).map(|i| (i * 31 % 251) as u8).collect();
        assert_eq!(crc32(&bytes), crc32fast::hash(&bytes));
        assert_eq!(crc32(&[]), crc32fast::hash(&[]));
    }
}
