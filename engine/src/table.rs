//! Prefix lists from files: one prefix per line (`192.0.2.0/24`, `2001:db8::/32`), optionally
//! gzip-compressed, `#` comments and blank lines ignored, CRLF tolerated. This is the format of
//! the full Internet table in `shared/data/fib/prefixes.txt.gz`.

use crate::fib::{Adjacency, AdjacencyId, FibConfig, FibError, FibWriter, GroupId, NextHop, Prefix};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Why a prefix list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("cannot read {path}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}:{line}: {error}")]
    Parse {
        path: String,
        line: usize,
        error: crate::fib::PrefixError,
    },
}

/// Reads every prefix from `path` (gzip if the name ends in `.gz`).
pub fn read_prefixes(path: &Path) -> Result<Vec<Prefix>, TableError> {
    let name = path.display().to_string();
    let io = |source| TableError::Io {
        path: name.clone(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    parse_prefixes(BufReader::with_capacity(1 << 16, reader), &name)
}

/// Parses a prefix list; `source` names it in errors.
pub fn parse_prefixes(reader: impl BufRead, source: &str) -> Result<Vec<Prefix>, TableError> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| TableError::Io {
            path: source.to_string(),
            source: e,
        })?;
        let text = line.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        let prefix = text.parse().map_err(|error| TableError::Parse {
            path: source.to_string(),
            line: i + 1,
            error,
        })?;
        out.push(prefix);
    }
    Ok(out)
}

/// Finds `rel` under the project's shared data folder: `$XROUTE_SHARED` if set, else a folder
/// named `shared` beside the checkout (or beside any of its ancestors).
pub fn shared_path(rel: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XROUTE_SHARED") {
        let p = Path::new(&dir).join(rel);
        return p.exists().then_some(p);
    }
    let starts = [
        std::env::current_dir().ok(),
        Some(PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
    ];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            let p = dir.join("shared").join(rel);
            if p.exists() {
                return Some(p);
            }
        }
    }
    None
}

/// The full Internet table shipped in the shared data (902k IPv4 + 160k IPv6 prefixes).
pub const REAL_TABLE: &str = "data/fib/prefixes.txt.gz";

/// A deterministic next-hop group (1..=`groups`) for a prefix of a list that carries none:
/// FNV-1a over the prefix's bits and length, so neighbouring prefixes get unrelated groups.
/// That is the worst case for the trie's leaf compression, so memory figures are conservative.
pub fn synthetic_group(prefix: &Prefix, groups: u32) -> GroupId {
    let (bits, len) = match prefix {
        Prefix::V4(n) => (u128::from(n.bits()), n.len()),
        Prefix::V6(n) => (n.bits(), n.len() + 256),
    };
    let h = bits
        .to_be_bytes()
        .iter()
        .chain(len.to_be_bytes().iter())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
        });
    let n = (h % u64::from(groups.clamp(1, GroupId::MAX))) as u32 + 1;
    GroupId::new(n).unwrap_or(GroupId::MIN)
}

/// A FIB with `groups` next-hop groups, each over one forwarding adjacency, ready for routes
/// that use [`synthetic_group`]. For tools, tests and benchmarks that load bare prefix lists.
pub fn fib_with_synthetic_groups(groups: u32) -> Result<FibWriter, FibError> {
    let groups = groups.clamp(1, GroupId::MAX);
    let mut fib = FibWriter::new(FibConfig {
        max_groups: groups,
        max_adjacencies: groups,
    });
    for i in 1..=groups {
        let adj = AdjacencyId(i - 1);
        let mac = [0x02, 0, 0, 0, (i >> 8) as u8, i as u8];
        fib.set_adjacency(adj, Adjacency::forward((i % 4) as u16, 1500, None, mac))?;
        let g = GroupId::new(i).unwrap_or(GroupId::MIN);
        fib.set_group(
            g,
            &[NextHop {
                adjacency: adj,
                weight: 1,
            }],
        )?;
    }
    Ok(fib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_with_comments_and_crlf() {
        let text = "# a table\r\n192.0.2.0/24\r\n\r\n2001:db8::/32  # documentation\n";
        let v = parse_prefixes(text.as_bytes(), "t").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].to_string(), "2001:db8::/32");
    }

    #[test]
    fn synthetic_groups_are_in_range_and_spread() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000u32 {
            let p: Prefix = format!("198.18.{}.0/24", i % 256).parse().unwrap();
            let g = synthetic_group(&p, 64);
            assert!((1..=64).contains(&g.get()));
            seen.insert(g);
        }
        assert!(seen.len() > 50, "{}", seen.len());
        let fib = fib_with_synthetic_groups(64).unwrap();
        assert!(fib.group(GroupId::new(64).unwrap()).is_some());
    }

    #[test]
    fn names_the_bad_line() {
        let e = parse_prefixes("192.0.2.0/24\n192.0.2.1/24\n".as_bytes(), "t").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("t:2: "), "{msg}");
        assert!(msg.contains("host bits"), "{msg}");
    }
}
