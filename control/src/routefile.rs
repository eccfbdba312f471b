//! Reading `[[route-file]]`s: one route per line in `route add` syntax, bare prefixes going to
//! the file's default gateway of their family, gzip if the name ends in `.gz`.

use crate::config::RouteFile;
use crate::routetext::{self, HopText, RouteKind, RouteText};
use anyhow::{anyhow, Context, Result};
use flate2::read::MultiGzDecoder;
use ipnet::IpNet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Opens a text file, decompressing `.gz`.
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, reader)))
}

/// Completes a line: a bare prefix (or address) gets `via <gateway of its family>`.
pub fn with_default_gateway(line: &str, via: &[std::net::IpAddr]) -> Result<RouteText, String> {
    let mut words = line.split_whitespace();
    let first = words.next().unwrap_or_default();
    if words.next().is_none() && first != "blackhole" && first != "unreachable" {
        let prefix = routetext::parse_prefix(first)?;
        let gw = via
            .iter()
            .find(|a| a.is_ipv4() == prefix.addr().is_ipv4())
            .ok_or_else(|| {
                format!("{prefix} has no next hop and there is no default gateway for its family")
            })?;
        return Ok(RouteText {
            prefix,
            kind: RouteKind::NextHops(vec![HopText {
                via: Some(*gw),
                dev: None,
                weight: 1,
            }]),
            distance: None,
            metric: None,
        });
    }
    routetext::parse_route(line)
}

/// Calls `f` with every route in the file as it is read (nothing is kept), or stops at the first
/// bad line with `file:line: message`.
pub fn for_each(file: &RouteFile, mut f: impl FnMut(IpNet, RouteText) -> Result<()>) -> Result<()> {
    let reader = open_text(&file.path)?;
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{}: read error", file.path.display()))?;
        let text = line.split('#').next().unwrap_or("").trim();
        if text.is_empty() {
            continue;
        }
        let route = with_default_gateway(text, &file.via)
            .map_err(|m| anyhow!("{}:{}: {m}", file.path.display(), i + 1))?;
        f(route.prefix, route).with_context(|| format!("{}:{}", file.path.display(), i + 1))?;
    }
    Ok(())
}

/// Every route in the file, or the first bad line as `file:line: message`.
pub fn read(file: &RouteFile) -> Result<Vec<(IpNet, RouteText)>> {
    let mut out = Vec::new();
    for_each(file, |p, r| {
        out.push((p, r));
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bare_prefixes_take_the_default_gateway_of_their_family() {
        let dir = std::env::temp_dir().join(format!("xroute-routefile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.txt.gz");
        let mut gz = flate2::write::GzEncoder::new(File::create(&path).unwrap(), flate2::Compression::fast());
        gz.write_all(b"# table\r\n198.51.100.0/24\r\n2001:db8:1::/48\nblackhole 203.0.113.0/24\n192.0.2.0/25 via 198.18.0.1 distance 7\n")
            .unwrap();
        gz.finish().unwrap();
        let f = RouteFile {
            path: path.clone(),
            via: vec!["198.18.0.254".parse().unwrap(), "2001:db8::fe".parse().unwrap()],
            distance: 1,
        };
        let routes = read(&f).unwrap();
        assert_eq!(routes.len(), 4);
        let hop = |r: &RouteText| match &r.kind {
            RouteKind::NextHops(h) => h[0].via.unwrap().to_string(),
            k => format!("{k:?}"),
        };
        assert_eq!(hop(&routes[0].1), "198.18.0.254");
        assert_eq!(hop(&routes[1].1), "2001:db8::fe");
        assert_eq!(routes[2].1.kind, RouteKind::Blackhole);
        assert_eq!(routes[3].1.distance, Some(7));

        let f = RouteFile { via: vec![], ..f };
        let err = read(&f).unwrap_err().to_string();
        assert!(
            err.ends_with(
                ":2: 198.51.100.0/24 has no next hop and there is no default gateway for its family"
            ),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
