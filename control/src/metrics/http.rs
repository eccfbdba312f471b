//! A small HTTP/1.1 server for `GET /metrics`, on the daemon's tokio runtime.
//!
//! Why by hand: the whole job is one read-only resource; a request parser of a hundred lines is
//! easier to bound and to review than hyper's stack, and the daemon keeps its few dependencies.
//! What keeps a slow, broken or hostile client from holding resources:
//!
//! - one request per connection (`Connection: close`): no keep-alive state to track;
//! - the request head is at most 8 KiB (else 431) and must arrive within 5 s in total, not per
//!   read, so that trickling bytes does not help (else 408);
//! - the response must be taken within 10 s;
//! - at most 64 connections at once; more are answered 503 and closed at once;
//! - after the response, what the client still sends (a body nobody asked for) is read and
//!   discarded for at most 1 s and 64 KiB, so that closing does not reset the connection before
//!   the client has read the answer.
//!
//! (The figures are [`Limits::DEFAULT`].)
//!
//! Parsing ([`respond`]) is a pure function from the request head to a [`Response`]; the socket
//! code around it only moves bytes and applies the limits above.
//!
//! The listener belongs to one task ([`Endpoint::start`]); a configuration reload that changes
//! `[metrics]` binds the new address first, so that an address in use rejects the reload and
//! the running configuration stays ([`Endpoint::prepare`]), then hands the new socket to the
//! task ([`Endpoint::commit`]), which closes the old one. Moving to another address on the same
//! port cannot bind first (the old listener holds the port); the task then closes the old
//! listener, binds the new address, and falls back to the old one if that fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::config::MetricsConfig;

/// Produces the exposition text of one scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// What one client may take; [`Limits::DEFAULT`] in the daemon, shorter in tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request head (request line and headers) accepted.
    pub max_head: usize,
    /// The whole request head must arrive within this.
    pub read_timeout: Duration,
    /// The whole response must be taken within this.
    pub write_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long, and how many bytes, are read and discarded after the response.
    pub linger: Duration,
    pub linger_bytes: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits {
        max_head: 8 * 1024,
        read_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(10),
        max_connections: 64,
        linger: Duration::from_secs(1),
        linger_bytes: 64 * 1024,
    };
}

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the serving task is told to do on reload.
#[derive(Debug)]
enum Change {
    /// Close the listener.
    Stop,
    /// Close the listener and serve on this one, already bound.
    Listen(std::net::TcpListener),
    /// Close the listener, then bind this address (it shares the old one's port).
    Rebind(SocketAddr),
}

/// The running endpoint, as the daemon holds it.
#[derive(Debug)]
pub struct Endpoint {
    config: MetricsConfig,
    changes: mpsc::UnboundedSender<Change>,
}

/// A new `[metrics]` section, checked and ready to take effect (see [`Endpoint::prepare`]).
#[derive(Debug)]
pub struct Prepared {
    config: MetricsConfig,
    change: Change,
}

/// Binds a listening socket for the runtime (non-blocking, SO_REUSEADDR as std sets it).
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The error for an address that cannot be listened on, for the operator.
fn bind_error(addr: SocketAddr, e: &std::io::Error) -> String {
    let hint = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process, or another xroute-control instance, has it: set [metrics] listen to \
             another port, or enabled = false)"
        }
        std::io::ErrorKind::AddrNotAvailable => " (no interface has this address)",
        _ => "",
    };
    format!("metrics.listen: cannot listen on {addr}: {e}{hint}")
}

impl Endpoint {
    /// Binds `config.listen` (when enabled) and starts serving on the current tokio runtime;
    /// the address in use or not available is an error.
    pub fn start(config: &MetricsConfig, render: Render) -> Result<Self, String> {
        let listener = if config.enabled {
            Some(bind(config.listen).map_err(|e| bind_error(config.listen, &e))?)
        } else {
            None
        };
        let (changes, rx) = mpsc::unbounded_channel();
        tokio::spawn(serve(listener, rx, render, Limits::DEFAULT));
        Ok(Self {
            config: config.clone(),
            changes,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &MetricsConfig {
        &self.config
    }

    /// Checks that `new` can take effect, binding its address now when it changes: `Ok(None)`
    /// when nothing changes, an error for the operator when the address cannot be used.
    pub fn prepare(&self, new: &MetricsConfig) -> Result<Option<Prepared>, String> {
        let old = &self.config;
        let same = if new.enabled {
            old.enabled && old.listen == new.listen
        } else {
            !old.enabled
        };
        if same {
            return Ok(None);
        }
        let change = if !new.enabled {
            Change::Stop
        } else {
            match bind(new.listen) {
                Ok(l) => Change::Listen(l),
                Err(e)
                    if e.kind() == std::io::ErrorKind::AddrInUse
                        && old.enabled
                        && old.listen.port() == new.listen.port() =>
                {
                    Change::Rebind(new.listen)
                }
                Err(e) => return Err(bind_error(new.listen, &e)),
            }
        };
        Ok(Some(Prepared {
            config: new.clone(),
            change,
        }))
    }

    /// Makes a prepared change take effect.
    pub fn commit(&mut self, prepared: Prepared) {
        self.config = prepared.config;
        // The task ends only with the runtime; if it is gone there is nothing left to serve.
        let _ = self.changes.send(prepared.change);
    }
}

/// Waits for a connection on `listener`, or forever when there is none.
async fn accept(listener: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Registers a bound socket with the runtime and says so.
fn listen(l: std::net::TcpListener) -> Option<TcpListener> {
    let addr = l.local_addr().ok();
    match TcpListener::from_std(l) {
        Ok(l) => {
            if let Some(a) = addr {
                tracing::info!("metrics: serving http://{a}/metrics");
            }
            Some(l)
        }
        Err(e) => {
            tracing::error!("metrics: cannot listen: {e}");
            None
        }
    }
}

/// The serving task: accepts connections and applies configuration changes.
async fn serve(
    listener: Option<std::net::TcpListener>,
    mut changes: mpsc::UnboundedReceiver<Change>,
    render: Render,
    limits: Limits,
) {
    let mut listener = listener.and_then(listen);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        tokio::select! {
            change = changes.recv() => {
                let Some(change) = change else { return };
                let old = listener.take().and_then(|l| l.local_addr().ok());
                listener = match change {
                    Change::Stop => {
                        tracing::info!("metrics: stopped");
                        None
                    }
                    Change::Listen(l) => listen(l),
                    Change::Rebind(addr) => match bind(addr) {
                        Ok(l) => listen(l),
                        Err(e) => {
                            tracing::error!("{}", bind_error(addr, &e));
                            let back = old.and_then(|a| bind(a).ok());
                            if back.is_none() {
                                tracing::error!("metrics: not serving");
                            }
                            back.and_then(listen)
                        }
                    },
                };
            }
            accepted = accept(&listener) => match accepted {
                Ok((stream, _)) => match Arc::clone(&permits).try_acquire_owned() {
                    Ok(permit) => {
                        let render = Arc::clone(&render);
                        tokio::spawn(async move {
                            serve_connection(stream, &*render, limits).await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        // Best effort, without waiting: the client learns why it is refused.
                        let busy = Response::error(503, "too many connections").encode(SystemTime::now());
                        let _ = stream.try_write(&busy);
                    }
                },
                Err(e) => {
                    // Out of file descriptors and the like: let it pass rather than spin.
                    tracing::warn!("metrics: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// How reading a request head ended.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    /// The head, up to and including the empty line.
    Complete(Vec<u8>),
    /// [`Limits::max_head`] bytes without the end of the head.
    TooLarge,
    /// The client closed before the head was complete.
    Closed,
}

/// Where the head ends in `buf` (one past its empty line), if it does. Lines end in CRLF or,
/// leniently (RFC 9112 2.2), a bare LF; empty lines before the request line are skipped.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    let mut seen_line = false;
    while let Some(nl) = buf.get(start..)?.iter().position(|&b| b == b'\n') {
        let line = buf.get(start..start + nl)?;
        let empty = line.is_empty() || line == b"\r";
        start += nl + 1;
        if empty && seen_line {
            return Some(start);
        }
        seen_line |= !empty;
    }
    None
}

async fn read_head(stream: &mut TcpStream, max_head: usize) -> std::io::Result<Head> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let room = max_head.saturating_sub(buf.len()).min(chunk.len());
        if room == 0 {
            return Ok(Head::TooLarge);
        }
        let n = stream.read(chunk.get_mut(..room).unwrap_or_default()).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Ok(Head::Complete(buf));
        }
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    render: &(dyn Fn() -> String + Send + Sync),
    limits: Limits,
) {
    let read = read_head(&mut stream, limits.max_head);
    let response = match tokio::time::timeout(limits.read_timeout, read).await {
        Err(_) => Response::error(408, "the request did not arrive in time"),
        Ok(Err(_)) | Ok(Ok(Head::Closed)) => return,
        Ok(Ok(Head::TooLarge)) => Response::error(431, "the request head is too large"),
        Ok(Ok(Head::Complete(head))) => respond(&head, render),
    };
    let bytes = response.encode(SystemTime::now());
    let sent = tokio::time::timeout(limits.write_timeout, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    // Lingering close: discard what the client still sends, briefly, so that closing with
    // unread data does not reset the connection under the response.
    let _ = tokio::time::timeout(limits.linger, async {
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < limits.linger_bytes {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// An HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// HEAD: the headers describe `body`, which is not sent.
    pub head_only: bool,
    /// `Allow`, for 405.
    pub allow: Option<&'static str>,
}

impl Response {
    fn ok(body: String, head_only: bool) -> Self {
        Self {
            status: 200,
            content_type: CONTENT_TYPE,
            body,
            head_only,
            allow: None,
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{} {}: {message}\n", status, reason(status)),
            head_only: false,
            allow: None,
        }
    }

    /// The bytes on the wire; `now` is for the `Date` header (RFC 9110 6.6.1).
    pub fn encode(&self, now: SystemTime) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            http_date(now),
            self.content_type,
            self.body.len()
        );
        if let Some(allow) = self.allow {
            out.push_str(&format!("Allow: {allow}\r\n"));
        }
        out.push_str("\r\n");
        if !self.head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// RFC 9110 5.6.2 `tchar`: what a method or a header name is made of.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The answer to a complete request head (as [`head_end`] delimits it). `render` is called only
/// for a well-formed `GET /metrics`.
pub fn respond(head: &[u8], render: &dyn Fn() -> String) -> Response {
    let Ok(text) = std::str::from_utf8(head) else {
        return Response::error(400, "the request is not text");
    };
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| l.is_empty());
    let request_line = lines.next().unwrap_or_default();
    let parts: Vec<&str> = request_line.split(' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Response::error(400, "the request line is not METHOD TARGET HTTP/1.1");
    };
    if !is_token(method) || !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Response::error(400, "the request line is not METHOD TARGET HTTP/1.1");
    }
    let http11 = match *version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        v if v.len() == 8
            && v.starts_with("HTTP/")
            && v.as_bytes().get(5).is_some_and(u8::is_ascii_digit)
            && v.as_bytes().get(6) == Some(&b'.')
            && v.as_bytes().get(7).is_some_and(u8::is_ascii_digit) =>
        {
            return Response::error(505, "only HTTP/1.0 and HTTP/1.1 are served")
        }
        _ => return Response::error(400, "the request line is not METHOD TARGET HTTP/1.1"),
    };
    let mut hosts = 0;
    for line in lines.take_while(|l| !l.is_empty()) {
        // No whitespace before the colon, no folded continuation lines (RFC 9112 5.1, 5.2).
        let Some((name, _value)) = line.split_once(':') else {
            return Response::error(400, "a header line has no colon");
        };
        if !is_token(name) {
            return Response::error(400, "a header name is malformed");
        }
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    // RFC 9112 3.2: an HTTP/1.1 request has exactly one Host.
    if http11 && hosts != 1 {
        return Response::error(400, "an HTTP/1.1 request needs exactly one Host header");
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Response::error(404, "the metrics are at /metrics");
    }
    match *method {
        "GET" => Response::ok(render(), false),
        "HEAD" => Response::ok(render(), true),
        _ => Response {
            allow: Some("GET, HEAD"),
            ..Response::error(405, "only GET and HEAD")
        },
    }
}

/// An IMF-fixdate (RFC 9110 5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS.get((days % 7) as usize).copied().unwrap_or("Thu"),
        MONTHS
            .get(month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("Jan"),
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month (1-12) and day (1-31) of a day counted from 1970-01-01, in the proleptic
/// Gregorian calendar (H. Hinnant's `civil_from_days`, for days after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
