//! Prefix lists from files: one prefix per line (`192.0.2.0/24`, `2001:db8::/32`), optionally
//! gzip-compressed, `#` comments and blank lines ignored, CRLF tolerated. This is the format of
//! the full Internet table in `shared/data/fib/prefixes.txt.gz`.

use crate::fib::Prefix;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Why a prefix list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{path}: {source}")]
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
    fn names_the_bad_line() {
        let e = parse_prefixes("192.0.2.0/24\n192.0.2.1/24\n".as_bytes(), "t").unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("t:2: "), "{msg}");
        assert!(msg.contains("host bits"), "{msg}");
    }
}
