//! A blocking client of the management socket, for `xroutectl` and tests.

use crate::api::{Reply, Request};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One connection to `xroute-control`.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Self> {
        let stream = UnixStream::connect(path).with_context(|| {
            format!(
                "cannot reach xroute-control at {} (is it running, and are you allowed to use its socket?)",
                path.display()
            )
        })?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        let writer = stream.try_clone()?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends a request and waits for its reply (which may be an error reply).
    pub fn call(&mut self, req: &Request) -> Result<Reply> {
        let mut line = serde_json::to_string(req)?;
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .with_context(|| format!("writing to {}", self.path.display()))?;
        let mut reply = String::new();
        let n = self
            .reader
            .read_line(&mut reply)
            .with_context(|| format!("reading from {}", self.path.display()))?;
        if n == 0 {
            bail!("xroute-control closed the connection");
        }
        serde_json::from_str(&reply).context("malformed reply from xroute-control")
    }

    /// Sends a request; an error reply becomes an error. Returns the reply's data.
    pub fn data(&mut self, req: &Request) -> Result<serde_json::Value> {
        let reply = self.call(req)?;
        if !reply.ok {
            bail!("{}", reply.error.unwrap_or_else(|| "request failed".into()));
        }
        Ok(reply.data)
    }

    /// Like [`Client::data`], decoded into `T`.
    pub fn get<T: serde::de::DeserializeOwned>(&mut self, req: &Request) -> Result<T> {
        serde_json::from_value(self.data(req)?).context("unexpected reply shape from xroute-control")
    }
}
