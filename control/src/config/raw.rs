//! The shape of the file, as serde sees it. Values that need a semantic check stay strings or
//! `i64` wrapped in [`Spanned`], so that the validator can say where they are; everything is
//! `deny_unknown_fields`, so a misspelt key is an error and not a silently ignored setting.

use serde::Deserialize;
use serde_path_to_error::Segment;
use toml::Spanned;

use super::{error_at, ConfigError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawConfig {
    #[serde(default)]
    pub router: RawRouter,
    #[serde(default)]
    pub interface: Vec<Spanned<RawInterface>>,
    #[serde(default)]
    pub route: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    pub route_file: Vec<Spanned<RawRouteFile>>,
    #[serde(default)]
    pub rip: RawProtocol,
    #[serde(default)]
    pub ospf: RawProtocol,
    #[serde(default)]
    pub bgp: super::bgp::RawBgp,
    #[serde(default)]
    pub metrics: RawMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawRouter {
    pub instance: Option<Spanned<String>>,
    pub run_dir: Option<Spanned<String>>,
    pub shm_dir: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawInterface {
    pub name: Spanned<String>,
    #[serde(default)]
    pub address: Vec<Spanned<String>>,
    pub mtu: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawRoute {
    pub prefix: Spanned<String>,
    pub via: Option<Spanned<String>>,
    pub interface: Option<Spanned<String>>,
    pub next_hop: Option<Spanned<Vec<Spanned<RawNextHop>>>>,
    pub blackhole: Option<Spanned<bool>>,
    pub unreachable: Option<Spanned<bool>>,
    pub distance: Option<Spanned<i64>>,
    pub metric: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawRouteFile {
    pub path: Spanned<String>,
    #[serde(default)]
    pub via: Vec<Spanned<String>>,
    pub distance: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawNextHop {
    pub via: Option<Spanned<String>>,
    pub interface: Option<Spanned<String>>,
    pub weight: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawProtocol {
    pub enabled: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawMetrics {
    pub enabled: Option<Spanned<bool>>,
    pub listen: Option<Spanned<String>>,
}

/// Parses the TOML and maps it onto [`RawConfig`]. Syntax errors, type errors, unknown and
/// missing fields come out here, with the field path tracked by `serde_path_to_error`.
pub(super) fn deserialize(text: &str, origin: &str) -> Result<RawConfig, ConfigError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let field = field_path(e.path());
        let inner = e.into_inner();
        // Syntax errors may carry a second line of detail; keep the message on one line.
        let message = inner
            .message()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        match inner.span() {
            Some(span) => error_at(origin, text, span.start, &field, message),
            None => ConfigError {
                origin: origin.to_owned(),
                line: None,
                column: None,
                field,
                message,
            },
        }
    })
}

/// The path as written in the file (`route[2].next-hop[0].via`), without the private keys
/// through which [`Spanned`] deserializes.
fn field_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } if key.starts_with("$__serde_spanned_private") => {}
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}
