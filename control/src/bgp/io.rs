//! The thin I/O layer of BGP: TCP sockets and time, on the daemon's tokio runtime, feeding a
//! [`BgpService`] that the daemon keeps under its lock (beside the RIB).
//!
//! - One listener on `[::]:port` (dual-stack, so IPv4 neighbours arrive as mapped addresses)
//!   hands each connection to the service, which refuses those from unknown addresses.
//! - Each connection has a reader task, which splits the stream into messages with
//!   [`message::frame_len`] and hands each to the service, a few tens of kB per hold of the
//!   lock, yielding in between (so that the pump moves a table's routes toward the engine
//!   while the rest is still arriving), and a writer task fed by an
//!   unbounded channel whose byte count the service sees as the connection's backlog (it stops
//!   queueing exports above [`super::service::MAX_BACKLOG`]).
//! - A timer task sleeps until the service's next deadline (or a few milliseconds while exports
//!   are pending), then ticks it and refreshes next hops once a second.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::message;
use super::service::{BgpService, ConnKey, Io};
use crate::rib::Rib;

/// Whatever owns the BGP service and the RIB under one lock (the daemon's state).
pub trait BgpHost: Send + 'static {
    /// The running service with the RIB, or `None` when BGP is off.
    fn bgp(&mut self) -> Option<(&mut BgpService, &mut Rib)>;
    /// What a service that was replaced or stopped still asked for (its NOTIFICATIONs and
    /// closes), to be carried out all the same.
    fn take_orphan_io(&mut self) -> Vec<Io>;
}

/// Largest read per system call; a full table arrives in a few hundred of these.
const READ_CHUNK: usize = 256 * 1024;

/// Bytes of received messages handled per hold of the host's lock (a few thousand prefixes,
/// milliseconds of work) before the reader yields to the daemon's other tasks.
const PROCESS_CHUNK: usize = 32 * 1024;

enum Handle {
    /// An outbound connection being made.
    Connecting(AbortHandle),
    Open {
        tx: mpsc::UnboundedSender<Option<Vec<u8>>>,
        backlog: Arc<AtomicUsize>,
        reader: AbortHandle,
    },
}

/// The sockets of the BGP service; see the module docs.
pub struct BgpIo<H: BgpHost> {
    host: Arc<Mutex<H>>,
    conns: Mutex<HashMap<ConnKey, Handle>>,
    tasks: Mutex<Vec<AbortHandle>>,
    /// The listener's port and task, following the configuration.
    listener: Mutex<Option<(u16, AbortHandle)>>,
}

impl<H: BgpHost> std::fmt::Debug for BgpIo<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BgpIo")
            .field("connections", &lock(&self.conns).len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<H: BgpHost> BgpIo<H> {
    /// Starts the timer task, which also (re)starts the listener as the configuration says.
    /// Must run inside the tokio runtime.
    pub fn start(host: Arc<Mutex<H>>) -> Arc<Self> {
        let io = Arc::new(Self {
            host,
            conns: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            listener: Mutex::new(None),
        });
        let me = Arc::clone(&io);
        let t = tokio::spawn(async move { me.timers().await });
        lock(&io.tasks).push(t.abort_handle());
        // Connections the service asked for while starting.
        io.with(|_, _| ());
        io
    }

    /// Stops every task and closes every connection (the service has been told already).
    pub fn stop(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        if let Some((_, t)) = lock(&self.listener).take() {
            t.abort();
        }
        for (_, h) in lock(&self.conns).drain() {
            match h {
                Handle::Connecting(a) => a.abort(),
                Handle::Open { tx, reader, .. } => {
                    let _ = tx.send(None);
                    reader.abort();
                }
            }
        }
    }

    /// Runs `f` on the service under the host's lock, then carries out what it asked for.
    fn with<R>(self: &Arc<Self>, f: impl FnOnce(&mut BgpService, &mut Rib) -> R) -> Option<R> {
        let (r, io) = {
            let mut host = lock(&self.host);
            let mut io = host.take_orphan_io();
            let r = host.bgp().map(|(svc, rib)| {
                let r = f(svc, rib);
                io.extend(svc.take_io());
                r
            });
            (r, io)
        };
        for action in io {
            self.execute(action);
        }
        r
    }

    /// Carries out what stopped services left behind (daemon shutdown).
    pub fn flush_orphans(self: &Arc<Self>) {
        let io = lock(&self.host).take_orphan_io();
        for action in io {
            self.execute(action);
        }
    }

    /// Starts, moves or stops the listener to match the service's configuration.
    fn follow_listener(self: &Arc<Self>, want: Option<u16>) {
        let mut cur = lock(&self.listener);
        if cur.as_ref().map(|(p, _)| *p) == want {
            return;
        }
        if let Some((_, t)) = cur.take() {
            t.abort();
        }
        if let Some(port) = want {
            let me = Arc::clone(self);
            let t = tokio::spawn(async move { me.listen(port).await });
            *cur = Some((port, t.abort_handle()));
        }
    }

    fn execute(self: &Arc<Self>, action: Io) {
        match action {
            Io::Send { conn, bytes } => {
                if let Some(Handle::Open { tx, backlog, .. }) = lock(&self.conns).get(&conn) {
                    backlog.fetch_add(bytes.len(), Ordering::Relaxed);
                    let _ = tx.send(Some(bytes));
                }
            }
            Io::Close { conn } => match lock(&self.conns).remove(&conn) {
                Some(Handle::Connecting(a)) => a.abort(),
                Some(Handle::Open { tx, reader, .. }) => {
                    let _ = tx.send(None);
                    reader.abort();
                }
                None => {}
            },
            Io::Connect {
                conn,
                remote,
                local,
                timeout,
            } => {
                let me = Arc::clone(self);
                let mut conns = lock(&self.conns);
                let t = tokio::spawn(async move {
                    let result = tokio::time::timeout(timeout, connect(remote, local)).await;
                    let stream = match result {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => return me.connect_failed(conn, e.to_string()),
                        Err(_) => return me.connect_failed(conn, "timed out".to_owned()),
                    };
                    let Ok(local) = stream.local_addr() else {
                        return me.connect_failed(conn, "no local address".to_owned());
                    };
                    // Still wanted? A Close while connecting removed the entry.
                    if lock(&me.conns).remove(&conn).is_none() {
                        return;
                    }
                    me.open(conn, stream);
                    me.with(|svc, _| svc.connected(Instant::now(), conn, local));
                });
                conns.insert(conn, Handle::Connecting(t.abort_handle()));
            }
        }
    }

    fn connect_failed(self: &Arc<Self>, conn: ConnKey, error: String) {
        if lock(&self.conns).remove(&conn).is_some() {
            self.with(|svc, _| svc.connect_failed(Instant::now(), conn, error));
        }
    }

    async fn listen(self: Arc<Self>, port: u16) {
        let addr = SocketAddr::from(([0u16; 8], port));
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                let hint = if e.kind() == std::io::ErrorKind::PermissionDenied && port < 1024 {
                    " (a port below 1024 needs CAP_NET_BIND_SERVICE: run as root or grant it, as \
                     deploy/systemd/xroute-control.service does)"
                } else {
                    ""
                };
                tracing::error!(
                    "bgp: cannot listen on TCP port {port}: {e}{hint}; only outbound sessions will work"
                );
                return;
            }
        };
        tracing::info!("bgp: listening on TCP port {port}");
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => {
                    let Ok(local) = stream.local_addr() else { continue };
                    let _ = stream.set_nodelay(true);
                    // The stream's tasks must exist before the service's first action (its
                    // OPEN) is carried out.
                    let accepted = {
                        let mut host = lock(&self.host);
                        let Some((svc, _)) = host.bgp() else { continue };
                        let conn = svc.accept(Instant::now(), remote, local);
                        (conn, svc.take_io())
                    };
                    match accepted {
                        (Some(conn), io) => {
                            self.open(conn, stream);
                            for a in io {
                                self.execute(a);
                            }
                        }
                        (None, io) => {
                            tracing::info!(
                                "bgp: refused a connection from {}: not a configured neighbor",
                                remote.ip().to_canonical()
                            );
                            for a in io {
                                self.execute(a);
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("bgp: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Starts the reader and writer of an established TCP connection.
    fn open(self: &Arc<Self>, conn: ConnKey, stream: TcpStream) {
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
        let backlog = Arc::new(AtomicUsize::new(0));
        let written = Arc::clone(&backlog);
        tokio::spawn(async move {
            while let Some(Some(bytes)) = rx.recv().await {
                if wr.write_all(&bytes).await.is_err() {
                    break;
                }
                written.fetch_sub(bytes.len(), Ordering::Relaxed);
            }
            let _ = wr.shutdown().await;
        });
        let me = Arc::clone(self);
        let reader = tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
            let error = loop {
                if buf.capacity() - buf.len() < message::MAX_MESSAGE_LEN {
                    buf.reserve(READ_CHUNK);
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) => break None,
                    Ok(_) => {}
                    Err(e) => break Some(e.to_string()),
                }
                // The whole messages in the buffer, a slice of at most PROCESS_CHUNK bytes per
                // lock, yielding in between: the pump then moves what they changed toward the
                // engine while the rest of a table is still being taken in.
                let mut at = 0;
                loop {
                    let step = me.with(|svc, rib| {
                        let now = Instant::now();
                        let start = at;
                        let mut at = at;
                        loop {
                            match message::frame_len(&buf[at..]) {
                                Ok(Some(len)) if buf.len() - at >= len => {
                                    if at - start >= PROCESS_CHUNK {
                                        break Ok((at, true));
                                    }
                                    svc.message(now, rib, conn, &buf[at..at + len]);
                                    at += len;
                                }
                                Ok(_) => break Ok((at, false)),
                                Err(n) => {
                                    svc.framing_error(now, rib, conn, n);
                                    break Err(());
                                }
                            }
                        }
                    });
                    match step {
                        Some(Ok((next, more))) => {
                            at = next;
                            if !more {
                                break;
                            }
                            tokio::task::yield_now().await;
                        }
                        // A framing error closed the session; BGP is off.
                        Some(Err(())) | None => return,
                    }
                }
                buf.drain(..at);
            };
            me.with(|svc, rib| svc.closed(Instant::now(), rib, conn, error));
            lock(&me.conns).remove(&conn);
        });
        lock(&self.conns).insert(
            conn,
            Handle::Open {
                tx,
                backlog,
                reader: reader.abort_handle(),
            },
        );
    }

    async fn timers(self: Arc<Self>) {
        let mut last_refresh = Instant::now();
        loop {
            let now = Instant::now();
            let backlogs: Vec<(ConnKey, usize)> = lock(&self.conns)
                .iter()
                .filter_map(|(c, h)| match h {
                    Handle::Open { backlog, .. } => Some((*c, backlog.load(Ordering::Relaxed))),
                    Handle::Connecting(_) => None,
                })
                .collect();
            let refresh = now.duration_since(last_refresh) >= Duration::from_secs(1);
            if refresh {
                last_refresh = now;
            }
            let next = self.with(|svc, rib| {
                for (c, b) in backlogs {
                    svc.set_backlog(c, b);
                }
                if refresh {
                    svc.refresh_next_hops(rib);
                }
                svc.tick(now, rib);
                (svc.next_deadline(), svc.has_pending(), svc.listen_port())
            });
            self.follow_listener(next.and_then(|(_, _, port)| port));
            let next = next.map(|(deadline, pending, _)| (deadline, pending));
            let wait = match next {
                None => Duration::from_secs(1),
                Some((_, true)) => Duration::from_millis(2),
                Some((deadline, false)) => deadline
                    .map(|d| d.saturating_duration_since(Instant::now()))
                    .unwrap_or(Duration::from_secs(1))
                    .min(Duration::from_secs(1)),
            };
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

/// A TCP connection to `remote`, from `local` if given.
async fn connect(remote: SocketAddr, local: Option<std::net::IpAddr>) -> std::io::Result<TcpStream> {
    let socket = if remote.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(l) = local {
        socket.bind(SocketAddr::new(l, 0))?;
    }
    let stream = socket.connect(remote).await?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
