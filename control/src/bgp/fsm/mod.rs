//! The BGP session state machine (RFC 4271 8), with connection collision detection (RFC 4271
//! 6.8), the FSM error subcodes of RFC 6608 and a restart backoff, for one configured peer.
//!
//! Pure and deterministic: no sockets, no tasks, no clock. The caller feeds [`Event`]s (operator
//! commands, TCP outcomes, decoded messages) and calls [`Session::on_timer`] when
//! [`Session::next_deadline`] has passed, always passing `now`; the session answers with
//! [`Action`]s pushed into a `Vec` the caller drains and carries out in order.
//!
//! # Connections
//!
//! RFC 4271 runs one FSM per TCP connection and lets two of them race when both speakers
//! connect at once. Here one [`Session`] owns every connection to its peer, each named by a
//! [`ConnId`]: at most one outbound (ids chosen by the session, [`Action::Connect`]) and at most
//! one inbound (ids from [`Session::new_conn_id`], [`Event::Accepted`]). Each connection is in
//! one of Connect (outbound TCP in progress), OpenSent, OpenConfirm or Established; the session's
//! [`State`] is the most advanced of them, Active when started without any, Idle when stopped or
//! waiting out the backoff. Every connection ends with exactly one [`Action::Close`]; after it
//! the caller forgets the id, and events for ids the session does not know are ignored.
//!
//! Collisions (6.8) are resolved as soon as an OPEN arrives: any other connection in OpenSent or
//! OpenConfirm collides with it (the peer's identifier is the one just received), and the
//! connection initiated by the speaker with the higher BGP identifier survives, the other gets
//! Cease / Connection Collision Resolution (6/7). An outbound attempt still in progress is simply
//! abandoned, as BIRD does. Established wins against any newcomer: while Established, an
//! accepted connection is refused at once with 6/7. A second inbound connection replaces an
//! older inbound one that is not Established (the peer gave up on it), also with 6/7. So at
//! most one connection is ever past OpenSent, and Established means exactly one connection.
//! While Idle (stopped, or waiting out the backoff) an accepted connection is refused with
//! Cease / Connection Rejected (6/5, RFC 4486 4).
//!
//! # Timers
//!
//! Deadlines are `Instant`s computed from the `now` of the call that set them: ConnectRetry
//! (outbound attempt timeout and the wait between attempts; stopped while any connection is in
//! OpenSent or beyond, so the caller should also bound its own TCP connect time), Hold (4
//! minutes until the OPEN arrives, then the negotiated time, restarted by every message),
//! Keepalive (a third of the negotiated hold time unless configured lower, restarted by our
//! KEEPALIVEs and UPDATEs: tell the session with [`Session::on_sent_update`]) and IdleHold (the
//! [`Backoff`]). A negotiated hold time of 0 runs neither Hold nor Keepalive. There is no
//! DelayOpen, and no jitter (RFC 4271 10 suggests some): determinism keeps tests exact.
//!
//! # Errors and restarts
//!
//! A bad OPEN (6.2), an unexpected message (RFC 6608: 5/1 in OpenSent, 5/2 in OpenConfirm, 5/3
//! in Established), a decode error the codec reports, hold timer expiry (4/0), a NOTIFICATION
//! from the peer or the connection dropping in OpenConfirm or Established all end that
//! connection; when no other connection carries on, the session goes Idle and starts again by
//! itself (RFC 4271 automatic start) after the backoff: 5 s, doubling to at most 120 s, back to 5
//! s after a session that stayed up 120 s (all configurable). A connection the peer closes in
//! OpenSent only sends the session back to Active, to retry after ConnectRetry (8.2.2, OpenSent,
//! event 18). Deviations from the letter of 8.2.2, as BIRD behaves: a failed outbound connection
//! also goes to Active (the RFC does so only with DelayOpen) instead of passing through Idle; a
//! passive session never connects, even when ConnectRetry would. [`Event::ManualStop`] sends a
//! Cease with the chosen subcode and an optional RFC 9003 shutdown communication and stays
//! down; [`Event::Reset`] does the same and starts again at once.

mod config;
mod notification;
mod open;
#[cfg(test)]
mod tests;

pub use config::{
    Backoff, ConfigError, SessionConfig, DEFAULT_CONNECT_RETRY, DEFAULT_HOLD_TIME, OPEN_HOLD_TIME,
};
pub use notification::{code, fsm_subcode, open_subcode, Cease, Notification, MAX_SHUTDOWN_TEXT};
pub use open::{check_open, LocalOpen, Negotiated, PeerOpen, BGP_VERSION};

use std::fmt;
use std::time::{Duration, Instant};

/// Names one TCP connection to the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the peer.
    Outbound,
    /// The peer connected to us.
    Inbound,
}

/// RFC 4271 8.2.2 states, in the order a session progresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "Idle",
            Self::Connect => "Connect",
            Self::Active => "Active",
            Self::OpenSent => "OpenSent",
            Self::OpenConfirm => "OpenConfirm",
            Self::Established => "Established",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened to the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Start (or, while waiting out the backoff, start now).
    ManualStart,
    /// Stop and stay down, sending Cease with `cease` (typically administrative shutdown, or
    /// peer de-configured) on every open connection, with `text` as the RFC 9003 shutdown
    /// communication where the subcode allows one.
    ManualStop {
        cease: Cease,
        text: Option<String>,
    },
    /// Like `ManualStop` (typically administrative reset, or other configuration change), then
    /// start again at once. Does nothing to a stopped session.
    Reset {
        cease: Cease,
        text: Option<String>,
    },
    /// The outbound connection asked for with [`Action::Connect`] is up.
    Connected(ConnId),
    /// The outbound connection could not be made (the error for the CLI).
    ConnectFailed(ConnId, String),
    /// The peer connected to us; the id comes from [`Session::new_conn_id`].
    Accepted(ConnId),
    /// The connection ended: `None` when the peer closed it, else the socket error.
    Closed(ConnId, Option<String>),
    Open(ConnId, PeerOpen),
    Keepalive(ConnId),
    /// An UPDATE arrived; the caller keeps its content until [`Action::DeliverUpdate`].
    Update(ConnId),
    Notification(ConnId, Notification),
    RouteRefresh(ConnId),
    /// The codec could not decode a message and produced this NOTIFICATION to send.
    DecodeError(ConnId, Notification),
}

/// Something the caller must do, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open an outbound TCP connection to the peer; report it as `Connected` or
    /// `ConnectFailed` with this id.
    Connect(ConnId),
    /// Drop the connection (abandon the attempt, or close the socket after flushing what was
    /// queued on it) and forget the id.
    Close(ConnId),
    SendOpen(ConnId, LocalOpen),
    SendKeepalive(ConnId),
    /// Always followed by `Close` of the same connection.
    SendNotification(ConnId, Notification),
    /// The session is up on this connection, with these terms.
    Established(ConnId, Negotiated),
    /// The session left Established: flush every route learned from the peer.
    Down {
        reason: DownReason,
    },
    /// Hand the UPDATE just received to the speaker (only ever in Established).
    DeliverUpdate(ConnId),
    /// Hand the ROUTE-REFRESH just received to the speaker (only ever in Established).
    DeliverRouteRefresh(ConnId),
}

/// Why a session or connection went down, for the CLI and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    HoldTimerExpired,
    NotificationReceived(Notification),
    /// We found an error (bad OPEN, unexpected message, undecodable message) and said so.
    NotificationSent(Notification),
    PeerClosed,
    ConnectionError(String),
    ConnectFailed(String),
    /// [`Event::ManualStop`], with what we sent.
    Stopped(Notification),
    /// [`Event::Reset`], with what we sent.
    Reset(Notification),
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HoldTimerExpired => f.write_str("hold timer expired"),
            Self::NotificationReceived(n) => write!(f, "notification received: {n}"),
            Self::NotificationSent(n) => write!(f, "notification sent: {n}"),
            Self::PeerClosed => f.write_str("peer closed the connection"),
            Self::ConnectionError(e) => write!(f, "connection error: {e}"),
            Self::ConnectFailed(e) => write!(f, "connection failed: {e}"),
            Self::Stopped(n) => write!(f, "stopped: {n}"),
            Self::Reset(n) => write!(f, "reset: {n}"),
        }
    }
}

/// The last reason a connection or the session ended (administrative ones included), and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LastError {
    pub at: Instant,
    pub reason: DownReason,
}

/// Messages by type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    pub open: u64,
    pub update: u64,
    pub keepalive: u64,
    pub notification: u64,
    pub route_refresh: u64,
}

impl MessageCounts {
    pub fn total(&self) -> u64 {
        self.open + self.update + self.keepalive + self.notification + self.route_refresh
    }
}

/// Counters over the session's whole life (they survive restarts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub received: MessageCounts,
    /// What the session emitted plus what the caller reported ([`Session::on_sent_update`],
    /// [`Session::on_sent_route_refresh`]).
    pub sent: MessageCounts,
    /// Entries into Established ("flaps" is this minus one while up).
    pub established_transitions: u64,
    pub connect_attempts: u64,
    /// Connections closed by collision resolution (6.8).
    pub collisions: u64,
}

/// One live connection, for the CLI and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    pub id: ConnId,
    pub direction: Direction,
    /// Connect, OpenSent, OpenConfirm or Established.
    pub state: State,
}

/// The peer's OPEN and what it was agreed to, from OpenConfirm on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Agreed {
    open: PeerOpen,
    negotiated: Negotiated,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Outbound TCP connection in progress.
    Connecting,
    OpenSent,
    OpenConfirm(Agreed),
    Established(Agreed),
}

impl Phase {
    fn state(&self) -> State {
        match self {
            Self::Connecting => State::Connect,
            Self::OpenSent => State::OpenSent,
            Self::OpenConfirm(_) => State::OpenConfirm,
            Self::Established(_) => State::Established,
        }
    }

    fn agreed(&self) -> Option<&Agreed> {
        match self {
            Self::OpenConfirm(a) | Self::Established(a) => Some(a),
            Self::Connecting | Self::OpenSent => None,
        }
    }

    /// TCP is up: BGP messages flow.
    fn is_open(&self) -> bool {
        !matches!(self, Self::Connecting)
    }
}

#[derive(Clone, Debug)]
struct Conn {
    id: ConnId,
    direction: Direction,
    phase: Phase,
    hold_at: Option<Instant>,
    keepalive_at: Option<Instant>,
}

/// A message that arrived on a connection.
enum Message {
    Open(PeerOpen),
    Keepalive,
    Update,
    Notification(Notification),
    RouteRefresh,
    DecodeError(Notification),
}

/// What happens after a connection fails and no other one carries on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Recovery {
    /// Idle, then start again after the backoff.
    Backoff,
    /// Active: try again after ConnectRetry (RFC 4271 8.2.2, OpenSent, event 18).
    Retry,
}

/// `now + d`, or no deadline at all if that is beyond what `Instant` can hold.
fn deadline(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

fn expired(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|t| t <= now)
}

/// One BGP session with one peer.
#[derive(Clone, Debug)]
pub struct Session {
    config: SessionConfig,
    local_open: LocalOpen,
    /// Started by the operator (ManualStart) and not stopped since.
    started: bool,
    conns: Vec<Conn>,
    connect_retry_at: Option<Instant>,
    /// While waiting out the backoff: when the session starts again.
    restart_at: Option<Instant>,
    /// The wait the next error will impose.
    next_backoff: Duration,
    established_since: Option<Instant>,
    state_since: Option<Instant>,
    next_id: u64,
    counters: Counters,
    last_error: Option<LastError>,
}

impl Session {
    /// A stopped (Idle) session; send [`Event::ManualStart`] to bring it up.
    pub fn new(config: SessionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            local_open: LocalOpen::from_config(&config),
            next_backoff: config.backoff.initial,
            config,
            started: false,
            conns: Vec::new(),
            connect_retry_at: None,
            restart_at: None,
            established_since: None,
            state_since: None,
            next_id: 1,
            counters: Counters::default(),
            last_error: None,
        })
    }

    /// A fresh id for an accepted connection (outbound ones come with [`Action::Connect`]).
    pub fn new_conn_id(&mut self) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        id
    }

    /// Handles one event.
    pub fn handle(&mut self, now: Instant, event: Event, out: &mut Vec<Action>) {
        let before = self.state();
        match event {
            Event::ManualStart => self.manual_start(now, out),
            Event::ManualStop { cease, text } => {
                if self.started {
                    let n = Notification::cease(cease, text.as_deref());
                    self.shut_down(now, &n, DownReason::Stopped(n.clone()), out);
                }
                self.started = false;
                self.restart_at = None;
                self.next_backoff = self.config.backoff.initial;
            }
            Event::Reset { cease, text } => {
                if self.started {
                    let n = Notification::cease(cease, text.as_deref());
                    self.shut_down(now, &n, DownReason::Reset(n.clone()), out);
                    self.start(now, out);
                }
            }
            Event::Connected(id) => self.connected(now, id, out),
            Event::ConnectFailed(id, error) => {
                self.connect_failed(now, id, DownReason::ConnectFailed(error), out)
            }
            Event::Accepted(id) => self.accepted(now, id, out),
            Event::Closed(id, error) => self.closed(now, id, error, out),
            Event::Open(id, open) => self.message(now, id, Message::Open(open), out),
            Event::Keepalive(id) => self.message(now, id, Message::Keepalive, out),
            Event::Update(id) => self.message(now, id, Message::Update, out),
            Event::Notification(id, n) => self.message(now, id, Message::Notification(n), out),
            Event::RouteRefresh(id) => self.message(now, id, Message::RouteRefresh, out),
            Event::DecodeError(id, n) => self.message(now, id, Message::DecodeError(n), out),
        }
        self.settle(now, before);
    }

    /// Fires every timer that has expired by `now`.
    pub fn on_timer(&mut self, now: Instant, out: &mut Vec<Action>) {
        let before = self.state();
        let ids: Vec<ConnId> = self.conns.iter().map(|c| c.id).collect();
        for id in ids {
            let Some(conn) = self.conns.iter_mut().find(|c| c.id == id) else {
                continue;
            };
            if expired(conn.hold_at, now) {
                let n = Notification::hold_timer_expired();
                self.fail(
                    now,
                    id,
                    Some(n),
                    DownReason::HoldTimerExpired,
                    Recovery::Backoff,
                    out,
                );
            } else if expired(conn.keepalive_at, now) {
                let keepalive = conn.phase.agreed().map_or(0, |a| a.negotiated.keepalive);
                conn.keepalive_at = deadline(now, Duration::from_secs(keepalive.into()));
                self.counters.sent.keepalive += 1;
                out.push(Action::SendKeepalive(id));
            }
        }
        if expired(self.restart_at, now) {
            self.restart_at = None;
            if self.started {
                self.start(now, out);
            }
        }
        if expired(self.connect_retry_at, now) {
            self.connect_retry_at = None;
            if self.may_connect() {
                self.connect(now, out);
            }
        }
        self.settle(now, before);
    }

    /// The earliest deadline: call [`Session::on_timer`] once it has passed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .flat_map(|c| [c.hold_at, c.keepalive_at])
            .chain([self.restart_at, self.connect_retry_at])
            .flatten()
            .min()
    }

    /// The caller sent an UPDATE: it restarts our KeepaliveTimer (RFC 4271 8.2.2, Established).
    pub fn on_sent_update(&mut self, now: Instant) {
        self.counters.sent.update += 1;
        let Some(conn) = self
            .conns
            .iter_mut()
            .find(|c| matches!(c.phase, Phase::Established(_)))
        else {
            return;
        };
        let keepalive = conn.phase.agreed().map_or(0, |a| a.negotiated.keepalive);
        if keepalive != 0 {
            conn.keepalive_at = deadline(now, Duration::from_secs(keepalive.into()));
        }
    }

    /// The caller sent a ROUTE-REFRESH (counted only: it does not stand in for a KEEPALIVE).
    pub fn on_sent_route_refresh(&mut self) {
        self.counters.sent.route_refresh += 1;
    }

    pub fn state(&self) -> State {
        if !self.started || self.restart_at.is_some() {
            return State::Idle;
        }
        self.conns
            .iter()
            .map(|c| c.phase.state())
            .max()
            .unwrap_or(State::Active)
    }

    /// When the state last changed (`None` before the first change).
    pub fn state_since(&self) -> Option<Instant> {
        self.state_since
    }

    /// Started by the operator: Idle then means waiting out the backoff, not stopped.
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// When the session starts again by itself, while it waits out the backoff.
    pub fn restart_at(&self) -> Option<Instant> {
        self.restart_at
    }

    pub fn established_since(&self) -> Option<Instant> {
        self.established_since
    }

    /// How long the session has been Established.
    pub fn uptime(&self, now: Instant) -> Option<Duration> {
        self.established_since
            .map(|since| now.saturating_duration_since(since))
    }

    pub fn last_error(&self) -> Option<&LastError> {
        self.last_error.as_ref()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// What we put in our OPENs.
    pub fn local_open(&self) -> &LocalOpen {
        &self.local_open
    }

    /// The OPEN of the connection in OpenConfirm or Established, if any.
    pub fn peer_open(&self) -> Option<&PeerOpen> {
        self.agreed().map(|a| &a.open)
    }

    /// The terms of the connection in OpenConfirm or Established, if any.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.agreed().map(|a| &a.negotiated)
    }

    /// The connection the session is Established on.
    pub fn established_conn(&self) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|c| matches!(c.phase, Phase::Established(_)))
            .map(|c| c.id)
    }

    pub fn connections(&self) -> Vec<ConnInfo> {
        self.conns
            .iter()
            .map(|c| ConnInfo {
                id: c.id,
                direction: c.direction,
                state: c.phase.state(),
            })
            .collect()
    }

    fn agreed(&self) -> Option<&Agreed> {
        self.conns.iter().find_map(|c| c.phase.agreed())
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let i = self.conns.iter().position(|c| c.id == id)?;
        Some(self.conns.remove(i))
    }

    /// Some connection is in OpenSent or beyond.
    fn has_open_conn(&self) -> bool {
        self.conns.iter().any(|c| c.phase.is_open())
    }

    /// Whether ConnectRetry should run: started, not passive, not waiting out the backoff,
    /// and no connection in OpenSent or beyond (RFC 4271 stops it there).
    fn may_connect(&self) -> bool {
        self.started && self.restart_at.is_none() && !self.config.passive && !self.has_open_conn()
    }

    /// After every call: ConnectRetry runs exactly when it should, and the state change time
    /// is kept.
    fn settle(&mut self, now: Instant, before: State) {
        if !self.may_connect() {
            self.connect_retry_at = None;
        } else if self.connect_retry_at.is_none() {
            self.connect_retry_at = deadline(now, self.config.connect_retry);
        }
        if self.state() != before {
            self.state_since = Some(now);
        }
    }

    fn record(&mut self, now: Instant, reason: DownReason) {
        self.last_error = Some(LastError { at: now, reason });
    }

    fn manual_start(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.started {
            self.next_backoff = self.config.backoff.initial;
            self.start(now, out);
        } else if self.restart_at.is_some() {
            self.start(now, out);
        }
    }

    /// Idle -> Connect (or Active when passive): RFC 4271 8.2.2, Idle, events 1 to 5.
    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.started = true;
        self.restart_at = None;
        if !self.config.passive {
            self.connect(now, out);
        }
    }

    /// A new outbound attempt, abandoning one in progress (Connect, event 9).
    fn connect(&mut self, now: Instant, out: &mut Vec<Action>) {
        let pending: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.direction == Direction::Outbound && !c.phase.is_open())
            .map(|c| c.id)
            .collect();
        for id in pending {
            self.remove(id);
            out.push(Action::Close(id));
        }
        let id = self.new_conn_id();
        self.conns.push(Conn {
            id,
            direction: Direction::Outbound,
            phase: Phase::Connecting,
            hold_at: None,
            keepalive_at: None,
        });
        self.counters.connect_attempts += 1;
        self.connect_retry_at = deadline(now, self.config.connect_retry);
        out.push(Action::Connect(id));
    }

    fn send_open(&mut self, id: ConnId, out: &mut Vec<Action>) {
        self.counters.sent.open += 1;
        out.push(Action::SendOpen(id, self.local_open.clone()));
    }

    /// Removes a connection, telling the peer why first when `notification` is given.
    fn close(&mut self, id: ConnId, notification: Option<Notification>, out: &mut Vec<Action>) {
        let was_open = self.remove(id).is_some_and(|c| c.phase.is_open());
        if let (true, Some(n)) = (was_open, notification) {
            self.counters.sent.notification += 1;
            out.push(Action::SendNotification(id, n));
        }
        out.push(Action::Close(id));
    }

    /// Sends `n` on every open connection, closes them all, reports Down if Established.
    fn shut_down(&mut self, now: Instant, n: &Notification, reason: DownReason, out: &mut Vec<Action>) {
        let was_established = self.established_conn().is_some();
        let ids: Vec<ConnId> = self.conns.iter().map(|c| c.id).collect();
        for id in ids {
            self.close(id, Some(n.clone()), out);
        }
        self.connect_retry_at = None;
        self.restart_at = None;
        if was_established {
            self.established_since = None;
            out.push(Action::Down {
                reason: reason.clone(),
            });
        }
        self.record(now, reason);
    }

    fn connected(&mut self, now: Instant, id: ConnId, out: &mut Vec<Action>) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.direction != Direction::Outbound || conn.phase.is_open() {
            return;
        }
        // Connect, event 16/17: OPEN out, a large hold time until the peer's OPEN.
        conn.phase = Phase::OpenSent;
        conn.hold_at = deadline(now, OPEN_HOLD_TIME);
        self.send_open(id, out);
    }

    fn connect_failed(&mut self, now: Instant, id: ConnId, reason: DownReason, out: &mut Vec<Action>) {
        let pending = self
            .conns
            .iter()
            .any(|c| c.id == id && c.direction == Direction::Outbound && !c.phase.is_open());
        if !pending {
            return;
        }
        self.close(id, None, out);
        self.record(now, reason);
        // Connect, event 18, as if DelayOpen were running: Active, retry after ConnectRetry.
        self.connect_retry_at = deadline(now, self.config.connect_retry);
    }

    fn accepted(&mut self, now: Instant, id: ConnId, out: &mut Vec<Action>) {
        if self.conns.iter().any(|c| c.id == id) {
            return;
        }
        let refuse = |s: &mut Self, cease: Cease, out: &mut Vec<Action>| {
            s.counters.sent.notification += 1;
            out.push(Action::SendNotification(id, Notification::cease(cease, None)));
            out.push(Action::Close(id));
        };
        if !self.started || self.restart_at.is_some() {
            // Idle refuses connections (RFC 4271 8.2.2); RFC 4486 4 says with which Cease.
            refuse(self, Cease::ConnectionRejected, out);
            return;
        }
        if self.established_conn().is_some() {
            self.counters.collisions += 1;
            refuse(self, Cease::ConnectionCollisionResolution, out);
            return;
        }
        let older: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.direction == Direction::Inbound)
            .map(|c| c.id)
            .collect();
        for old in older {
            self.counters.collisions += 1;
            self.close(old, Some(collision()), out);
        }
        // Active/Connect, event 17 without DelayOpen: OPEN out at once.
        self.conns.push(Conn {
            id,
            direction: Direction::Inbound,
            phase: Phase::OpenSent,
            hold_at: deadline(now, OPEN_HOLD_TIME),
            keepalive_at: None,
        });
        self.send_open(id, out);
    }

    fn closed(&mut self, now: Instant, id: ConnId, error: Option<String>, out: &mut Vec<Action>) {
        let Some(phase) = self.conns.iter().find(|c| c.id == id).map(|c| c.phase.state()) else {
            return;
        };
        let reason = match error {
            Some(e) if phase == State::Connect => DownReason::ConnectFailed(e),
            Some(e) => DownReason::ConnectionError(e),
            None if phase == State::Connect => DownReason::ConnectFailed("connection closed".to_owned()),
            None => DownReason::PeerClosed,
        };
        match phase {
            State::Connect => self.connect_failed(now, id, reason, out),
            State::OpenSent => self.fail(now, id, None, reason, Recovery::Retry, out),
            _ => self.fail(now, id, None, reason, Recovery::Backoff, out),
        }
    }

    fn message(&mut self, now: Instant, id: ConnId, msg: Message, out: &mut Vec<Action>) {
        let Some(conn) = self.conns.iter_mut().find(|c| c.id == id) else {
            return;
        };
        if !conn.phase.is_open() {
            // No message can arrive before TCP is up: a confused caller; nothing to answer.
            return;
        }
        let received = &mut self.counters.received;
        match &msg {
            Message::Open(_) => received.open += 1,
            Message::Keepalive => received.keepalive += 1,
            Message::Update => received.update += 1,
            Message::Notification(_) => received.notification += 1,
            Message::RouteRefresh => received.route_refresh += 1,
            Message::DecodeError(_) => {}
        }
        let state = conn.phase.state();
        match (state, msg) {
            (_, Message::Notification(n)) => {
                // Never answered (RFC 4271 6.4); OpenSent event 25 and OpenConfirm/Established
                // event 24/25: down.
                let reason = DownReason::NotificationReceived(n);
                self.fail(now, id, None, reason, Recovery::Backoff, out);
            }
            (_, Message::DecodeError(n)) => {
                let reason = DownReason::NotificationSent(n.clone());
                self.fail(now, id, Some(n), reason, Recovery::Backoff, out);
            }
            (State::OpenSent, Message::Open(open)) => self.open_received(now, id, open, out),
            (State::OpenSent, _) => self.fsm_error(now, id, fsm_subcode::UNEXPECTED_IN_OPEN_SENT, out),
            (State::OpenConfirm, Message::Keepalive) => self.establish(now, id, out),
            (State::OpenConfirm, _) => self.fsm_error(now, id, fsm_subcode::UNEXPECTED_IN_OPEN_CONFIRM, out),
            (State::Established, Message::Open(_)) => {
                self.fsm_error(now, id, fsm_subcode::UNEXPECTED_IN_ESTABLISHED, out)
            }
            (State::Established, msg) => {
                // RFC 4271 6.5: any message shows the peer alive.
                let hold = conn.phase.agreed().map_or(0, |a| a.negotiated.hold_time);
                if hold != 0 {
                    conn.hold_at = deadline(now, Duration::from_secs(hold.into()));
                }
                match msg {
                    Message::Update => out.push(Action::DeliverUpdate(id)),
                    Message::RouteRefresh => out.push(Action::DeliverRouteRefresh(id)),
                    _ => {}
                }
            }
            // Connections in Connect were returned from above.
            (State::Idle | State::Connect | State::Active, _) => {}
        }
    }

    fn fsm_error(&mut self, now: Instant, id: ConnId, subcode: u8, out: &mut Vec<Action>) {
        let n = Notification::new(code::FSM, subcode, Vec::new());
        let reason = DownReason::NotificationSent(n.clone());
        self.fail(now, id, Some(n), reason, Recovery::Backoff, out);
    }

    /// OpenSent, event 19 (RFC 4271 8.2.2), after the checks of 6.2 and the collision
    /// detection of 6.8.
    fn open_received(&mut self, now: Instant, id: ConnId, open: PeerOpen, out: &mut Vec<Action>) {
        let negotiated = match check_open(&self.config, &open) {
            Ok(n) => n,
            Err(n) => {
                let reason = DownReason::NotificationSent(n.clone());
                self.fail(now, id, Some(n), reason, Recovery::Backoff, out);
                return;
            }
        };
        let Some(direction) = self.conns.iter().find(|c| c.id == id).map(|c| c.direction) else {
            return;
        };
        let others: Vec<(ConnId, Direction, State)> = self
            .conns
            .iter()
            .filter(|c| c.id != id)
            .map(|c| (c.id, c.direction, c.phase.state()))
            .collect();
        let loses = others.iter().any(|&(_, other_dir, other_state)| {
            other_state == State::Established
                || (other_state != State::Connect && !self.survives(direction, other_dir, open.bgp_id))
        });
        if loses {
            self.counters.collisions += 1;
            self.close(id, Some(collision()), out);
            return;
        }
        for (other, _, other_state) in others {
            if other_state == State::Connect {
                // The peer reached us first: abandon our attempt, as BIRD does.
                self.close(other, None, out);
            } else {
                self.counters.collisions += 1;
                self.close(other, Some(collision()), out);
            }
        }
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let (hold, keepalive) = (negotiated.hold_time, negotiated.keepalive);
        conn.phase = Phase::OpenConfirm(Agreed { open, negotiated });
        (conn.hold_at, conn.keepalive_at) = if hold == 0 {
            (None, None)
        } else {
            (
                deadline(now, Duration::from_secs(hold.into())),
                deadline(now, Duration::from_secs(keepalive.into())),
            )
        };
        self.counters.sent.keepalive += 1;
        out.push(Action::SendKeepalive(id));
    }

    /// RFC 4271 6.8: of two colliding connections, the one initiated by the speaker with the
    /// higher BGP identifier (compared as host-order integers) survives. Of two in the same
    /// direction the newer one, whose OPEN just arrived, survives: the peer gave up the other.
    fn survives(&self, this: Direction, other: Direction, remote_id: std::net::Ipv4Addr) -> bool {
        if this == other {
            return true;
        }
        let local_higher = u32::from(self.config.router_id) > u32::from(remote_id);
        (this == Direction::Outbound) == local_higher
    }

    /// OpenConfirm, event 26: Established; every other connection goes.
    fn establish(&mut self, now: Instant, id: ConnId, out: &mut Vec<Action>) {
        let others: Vec<ConnId> = self.conns.iter().filter(|c| c.id != id).map(|c| c.id).collect();
        for other in others {
            self.counters.collisions += 1;
            self.close(other, Some(collision()), out);
        }
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let Phase::OpenConfirm(agreed) = std::mem::replace(&mut conn.phase, Phase::OpenSent) else {
            return;
        };
        let hold = agreed.negotiated.hold_time;
        conn.hold_at = if hold == 0 {
            None
        } else {
            deadline(now, Duration::from_secs(hold.into()))
        };
        let negotiated = agreed.negotiated.clone();
        conn.phase = Phase::Established(agreed);
        self.established_since = Some(now);
        self.counters.established_transitions += 1;
        out.push(Action::Established(id, negotiated));
    }

    /// A connection failed: tell the peer (`send`), close it, and unless another connection
    /// carries on, recover as `recovery` says (always the backoff after Established).
    fn fail(
        &mut self,
        now: Instant,
        id: ConnId,
        send: Option<Notification>,
        reason: DownReason,
        recovery: Recovery,
        out: &mut Vec<Action>,
    ) {
        let was_established = self.established_conn() == Some(id);
        self.close(id, send, out);
        self.record(now, reason.clone());
        if was_established {
            out.push(Action::Down { reason });
        } else if self.has_open_conn() {
            return;
        }
        match recovery {
            Recovery::Retry if !was_established => {
                self.connect_retry_at = deadline(now, self.config.connect_retry);
            }
            _ => self.idle_with_backoff(now, out),
        }
    }

    /// Idle until the backoff is over (RFC 4271 8.1.1 IdleHoldTimer, DampPeerOscillations).
    fn idle_with_backoff(&mut self, now: Instant, out: &mut Vec<Action>) {
        let ids: Vec<ConnId> = self.conns.iter().map(|c| c.id).collect();
        for id in ids {
            self.close(id, None, out);
        }
        let backoff = self.config.backoff;
        let stable = self
            .established_since
            .is_some_and(|since| now.saturating_duration_since(since) >= backoff.stable_after);
        if stable {
            self.next_backoff = backoff.initial;
        }
        self.established_since = None;
        self.restart_at = Some(deadline(now, self.next_backoff).unwrap_or(now));
        self.next_backoff = self.next_backoff.saturating_mul(2).min(backoff.max);
        self.connect_retry_at = None;
    }
}

fn collision() -> Notification {
    Notification::cease(Cease::ConnectionCollisionResolution, None)
}
