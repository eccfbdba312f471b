//! The session driven by events, on a fixed time base: no sockets, no clock.

use super::open::tests::{config, peer_open};
use super::*;
use crate::bgp::types::Family;
use std::net::Ipv4Addr;

const RETRY: u64 = 120;

struct Harness {
    s: Session,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new(config: SessionConfig) -> Self {
        let t0 = Instant::now();
        Self {
            s: Session::new(config).unwrap(),
            t0,
            now: t0,
        }
    }

    fn active() -> Self {
        Self::new(config())
    }

    fn ev(&mut self, e: Event) -> Vec<Action> {
        let mut out = Vec::new();
        self.s.handle(self.now, e, &mut out);
        out
    }

    /// Moves the clock to `secs` after the start and fires what expired.
    fn at(&mut self, secs: u64) -> Vec<Action> {
        self.now = self.t0 + Duration::from_secs(secs);
        let mut out = Vec::new();
        self.s.on_timer(self.now, &mut out);
        out
    }

    fn secs(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    fn elapsed(&self) -> u64 {
        (self.now - self.t0).as_secs()
    }

    fn accept(&mut self) -> (ConnId, Vec<Action>) {
        let id = self.s.new_conn_id();
        (id, self.ev(Event::Accepted(id)))
    }

    /// ManualStart; returns the outbound connection asked for.
    fn start(&mut self) -> ConnId {
        match self.ev(Event::ManualStart).as_slice() {
            [Action::Connect(id)] => *id,
            other => panic!("expected one Connect, got {other:?}"),
        }
    }

    /// Start, connect, exchange OPENs and KEEPALIVEs with `open`: Established on the outbound
    /// connection.
    fn establish_with(&mut self, open: PeerOpen) -> (ConnId, Negotiated) {
        let c = self.start();
        self.ev(Event::Connected(c));
        assert_eq!(self.ev(Event::Open(c, open)), vec![Action::SendKeepalive(c)]);
        match self.ev(Event::Keepalive(c)).as_slice() {
            [Action::Established(id, n)] if *id == c => (c, n.clone()),
            other => panic!("expected Established, got {other:?}"),
        }
    }

    fn establish(&mut self) -> ConnId {
        self.establish_with(peer_open()).0
    }

    /// Brings the session to `state` on one connection (outbound unless passive).
    fn reach(&mut self, state: State) -> Option<ConnId> {
        match state {
            State::Idle => None,
            State::Connect => Some(self.start()),
            State::Active => {
                let c = self.start();
                self.ev(Event::ConnectFailed(c, "refused".into()));
                None
            }
            State::OpenSent => {
                let c = self.start();
                self.ev(Event::Connected(c));
                Some(c)
            }
            State::OpenConfirm => {
                let c = self.start();
                self.ev(Event::Connected(c));
                self.ev(Event::Open(c, peer_open()));
                Some(c)
            }
            State::Established => Some(self.establish()),
        }
        .inspect(|_| assert_eq!(self.s.state(), state))
    }
}

fn notif(code: u8, subcode: u8) -> Notification {
    Notification::new(code, subcode, Vec::new())
}

fn cease(c: Cease) -> Notification {
    Notification::cease(c, None)
}

fn notified_and_closed(c: ConnId, n: Notification) -> Vec<Action> {
    vec![Action::SendNotification(c, n), Action::Close(c)]
}

#[test]
fn an_active_session_connects_exchanges_opens_and_is_established() {
    let mut h = Harness::active();
    assert_eq!(h.s.state(), State::Idle);
    assert_eq!(h.s.next_deadline(), None);

    let c = h.start();
    assert_eq!(h.s.state(), State::Connect);
    assert_eq!(h.s.next_deadline(), Some(h.secs(RETRY)));

    h.now = h.secs(1);
    let out = h.ev(Event::Connected(c));
    let local = LocalOpen {
        asn: 64500,
        hold_time: 90,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
        families: Family::ALL.to_vec(),
        route_refresh: true,
        four_octet_as: true,
    };
    assert_eq!(out, vec![Action::SendOpen(c, local)]);
    assert_eq!(h.s.state(), State::OpenSent);
    // The large hold time until the OPEN arrives, and no more ConnectRetry.
    assert_eq!(h.s.next_deadline(), Some(h.secs(1 + 240)));

    h.now = h.secs(2);
    let mut open = peer_open();
    open.hold_time = 30;
    assert_eq!(h.ev(Event::Open(c, open.clone())), vec![Action::SendKeepalive(c)]);
    assert_eq!(h.s.state(), State::OpenConfirm);
    assert_eq!(h.s.peer_open(), Some(&open));
    assert_eq!(h.s.next_deadline(), Some(h.secs(2 + 10)));

    h.now = h.secs(3);
    let want = Negotiated {
        hold_time: 30,
        keepalive: 10,
        four_octet_as: true,
        families: Family::ALL.to_vec(),
        route_refresh: true,
        peer_router_id: Ipv4Addr::new(10, 0, 0, 2),
        peer_as: 64501,
    };
    assert_eq!(
        h.ev(Event::Keepalive(c)),
        vec![Action::Established(c, want.clone())]
    );
    assert_eq!(h.s.state(), State::Established);
    assert_eq!(h.s.negotiated(), Some(&want));
    assert_eq!(h.s.established_conn(), Some(c));
    assert_eq!(h.s.established_since(), Some(h.secs(3)));
    assert_eq!(h.s.uptime(h.secs(10)), Some(Duration::from_secs(7)));
    assert_eq!(h.s.state_since(), Some(h.secs(3)));
    let counters = h.s.counters();
    assert_eq!(counters.established_transitions, 1);
    assert_eq!((counters.sent.open, counters.sent.keepalive), (1, 1));
    assert_eq!((counters.received.open, counters.received.keepalive), (1, 1));
    assert_eq!(counters.connect_attempts, 1);
    assert_eq!(State::Established.to_string(), "Established");
}

#[test]
fn hold_time_zero_on_either_side_runs_no_keepalive_or_hold_timer() {
    for (ours, theirs) in [(0, 90), (90, 0), (0, 0)] {
        let mut c = config();
        c.hold_time = ours;
        let mut h = Harness::new(c);
        let mut open = peer_open();
        open.hold_time = theirs;
        let (_, n) = h.establish_with(open);
        assert_eq!((n.hold_time, n.keepalive), (0, 0));
        assert_eq!(h.s.next_deadline(), None);
        assert_eq!(h.at(100_000), vec![]);
        assert_eq!(h.s.state(), State::Established);
    }
}

#[test]
fn a_passive_session_never_connects_and_waits_in_active() {
    let mut c = config();
    c.passive = true;
    let mut h = Harness::new(c);
    assert_eq!(h.ev(Event::ManualStart), vec![]);
    assert_eq!(h.s.state(), State::Active);
    assert_eq!(h.s.next_deadline(), None);
    assert_eq!(h.at(10_000), vec![]);

    let (c1, out) = h.accept();
    assert!(matches!(out.as_slice(), [Action::SendOpen(id, _)] if *id == c1));
    assert_eq!(h.s.state(), State::OpenSent);
    // The peer goes away before its OPEN: back to Active, and still no Connect.
    assert_eq!(h.ev(Event::Closed(c1, None)), vec![Action::Close(c1)]);
    assert_eq!(h.s.state(), State::Active);
    assert_eq!(h.s.next_deadline(), None);
    assert_eq!(h.at(20_000), vec![]);
    assert_eq!(
        h.s.last_error().map(|e| e.reason.clone()),
        Some(DownReason::PeerClosed)
    );
}

#[test]
fn connect_and_active_alternate_on_connect_retry() {
    let mut h = Harness::active();
    let c1 = h.start();
    h.now = h.secs(1);
    assert_eq!(
        h.ev(Event::ConnectFailed(c1, "connection refused".into())),
        vec![Action::Close(c1)]
    );
    assert_eq!(h.s.state(), State::Active);
    assert_eq!(h.s.next_deadline(), Some(h.secs(1 + RETRY)));
    assert_eq!(
        h.s.last_error().map(|e| e.reason.to_string()),
        Some("connection failed: connection refused".into())
    );
    // A failed connection is no error for the backoff: nothing but ConnectRetry runs.
    assert_eq!(h.s.restart_at(), None);
    assert_eq!(h.at(RETRY), vec![]);

    let out = h.at(1 + RETRY);
    let [Action::Connect(c2)] = out.as_slice() else {
        panic!("expected Connect, got {out:?}");
    };
    assert_eq!(h.s.state(), State::Connect);
    // The attempt hangs: ConnectRetry abandons it and tries again (Connect, event 9).
    let out = h.at(1 + 2 * RETRY);
    let [Action::Close(closed), Action::Connect(c3)] = out.as_slice() else {
        panic!("expected Close and Connect, got {out:?}");
    };
    assert_eq!(closed, c2);
    assert_ne!(c3, c2);
    assert_eq!(h.s.state(), State::Connect);
    assert_eq!(h.s.counters().connect_attempts, 3);
    // The late outcome of the abandoned attempt is ignored.
    assert_eq!(h.ev(Event::Connected(*c2)), vec![]);
}

#[test]
fn keepalives_go_out_on_time_and_updates_push_them_back() {
    let mut h = Harness::active();
    let c = h.establish();
    // Hold 90, keepalive 30, from t=0.
    assert_eq!(h.at(29), vec![]);
    assert_eq!(h.at(30), vec![Action::SendKeepalive(c)]);
    assert_eq!(h.s.next_deadline(), Some(h.secs(60)));
    h.ev(Event::Keepalive(c));
    // An UPDATE at 50 counts as a keepalive: the next one is due at 80.
    h.now = h.secs(50);
    h.s.on_sent_update(h.now);
    assert_eq!(h.at(60), vec![]);
    assert_eq!(h.at(80), vec![Action::SendKeepalive(c)]);
    assert_eq!(h.s.counters().sent.update, 1);
    assert_eq!(h.s.counters().sent.keepalive, 1 + 2);
    // Hold: the peer's last message was at 30: it expires at 120.
    assert_eq!(h.at(110), vec![Action::SendKeepalive(c)]);
    let out = h.at(120);
    assert_eq!(
        out,
        vec![
            Action::SendNotification(c, Notification::hold_timer_expired()),
            Action::Close(c),
            Action::Down {
                reason: DownReason::HoldTimerExpired
            },
        ]
    );
    assert_eq!(h.s.state(), State::Idle);
    assert!(h.s.is_started());
    assert_eq!(h.s.restart_at(), Some(h.secs(125)));
    assert_eq!(h.s.established_since(), None);
    // Then it starts again by itself.
    assert!(matches!(h.at(125).as_slice(), [Action::Connect(_)]));
    assert_eq!(h.s.state(), State::Connect);
}

#[test]
fn any_message_in_established_restarts_the_hold_timer_and_updates_are_delivered() {
    let mut h = Harness::active();
    let c = h.establish();
    h.now = h.secs(80);
    assert_eq!(h.ev(Event::Update(c)), vec![Action::DeliverUpdate(c)]);
    h.now = h.secs(160);
    assert_eq!(h.ev(Event::RouteRefresh(c)), vec![Action::DeliverRouteRefresh(c)]);
    // Hold timer: 90 s after 160 (the keepalive due since 30 goes out on the way).
    assert_eq!(h.at(249), vec![Action::SendKeepalive(c)]);
    assert_eq!(h.s.state(), State::Established);
    assert!(h
        .at(250)
        .contains(&Action::SendNotification(c, Notification::hold_timer_expired())));
    let r = &h.s.counters().received;
    assert_eq!((r.update, r.route_refresh), (1, 1));
}

#[test]
fn the_hold_timer_expires_in_open_sent_after_four_minutes() {
    let mut h = Harness::active();
    let c = h.reach(State::OpenSent).unwrap();
    assert_eq!(h.at(239), vec![]);
    assert_eq!(
        h.at(240),
        notified_and_closed(c, Notification::hold_timer_expired())
    );
    assert_eq!(h.s.state(), State::Idle);
    assert_eq!(h.s.restart_at(), Some(h.secs(245)));
}

/// Brings a session up, lets the peer answer with a broken message, and returns the wait
/// before the automatic restart.
fn fail_once(h: &mut Harness) -> u64 {
    let restart = h.s.restart_at().expect("waiting out the backoff");
    let secs = (restart - h.t0).as_secs();
    let out = h.at(secs);
    let [Action::Connect(c)] = out.as_slice() else {
        panic!("expected Connect after the backoff, got {out:?}");
    };
    h.ev(Event::Connected(*c));
    h.ev(Event::DecodeError(*c, notif(1, 2)));
    (h.s.restart_at().unwrap() - h.now).as_secs()
}

#[test]
fn the_backoff_doubles_caps_and_resets_after_a_stable_session() {
    let mut h = Harness::active();
    let c = h.reach(State::OpenSent).unwrap();
    assert_eq!(
        h.ev(Event::DecodeError(c, notif(1, 2))),
        notified_and_closed(c, notif(1, 2))
    );
    assert_eq!(h.s.state(), State::Idle);
    assert_eq!(h.s.restart_at(), Some(h.secs(5)));
    let waits: Vec<u64> = (0..7).map(|_| fail_once(&mut h)).collect();
    assert_eq!(waits, vec![10, 20, 40, 80, 120, 120, 120]);

    // A session that stays up less than 120 s keeps the backoff where it is...
    let restart = (h.s.restart_at().unwrap() - h.t0).as_secs();
    let out = h.at(restart);
    let [Action::Connect(c)] = out.as_slice() else {
        panic!("{out:?}");
    };
    let c = *c;
    h.ev(Event::Connected(c));
    h.ev(Event::Open(c, peer_open()));
    h.ev(Event::Keepalive(c));
    h.now = h.secs(restart + 60);
    h.ev(Event::Closed(c, Some("connection reset by peer".into())));
    assert_eq!(h.s.restart_at(), Some(h.secs(restart + 60 + 120)));

    // ...one that stayed up 120 s or more starts again from 5 s.
    let restart = restart + 180;
    let out = h.at(restart);
    let [Action::Connect(c)] = out.as_slice() else {
        panic!("{out:?}");
    };
    let c = *c;
    h.ev(Event::Connected(c));
    h.ev(Event::Open(c, peer_open()));
    h.ev(Event::Keepalive(c));
    h.now = h.secs(restart + 200);
    let out = h.ev(Event::Notification(c, cease(Cease::AdministrativeReset)));
    assert_eq!(
        out,
        vec![
            Action::Close(c),
            Action::Down {
                reason: DownReason::NotificationReceived(cease(Cease::AdministrativeReset))
            }
        ]
    );
    assert_eq!(h.s.restart_at(), Some(h.secs(restart + 200 + 5)));
    assert_eq!(fail_once(&mut h), 10);
    assert_eq!(h.s.counters().established_transitions, 2);
}

#[test]
fn manual_start_during_the_backoff_starts_at_once_and_stop_resets_it() {
    let mut h = Harness::active();
    let c = h.reach(State::OpenSent).unwrap();
    h.ev(Event::DecodeError(c, notif(1, 1)));
    assert!(h.s.restart_at().is_some());
    assert!(matches!(
        h.ev(Event::ManualStart).as_slice(),
        [Action::Connect(_)]
    ));
    assert_eq!(h.s.restart_at(), None);
    assert_eq!(h.s.state(), State::Connect);
    // A start while running does nothing.
    assert_eq!(h.ev(Event::ManualStart), vec![]);
}

#[test]
fn each_open_error_is_sent_and_ends_the_connection() {
    let c = config();
    let mut bad_version = peer_open();
    bad_version.version = 3;
    let mut bad_as = peer_open();
    bad_as.as4 = Some(64999);
    bad_as.my_as = 64999;
    let mut bad_id = peer_open();
    bad_id.bgp_id = c.router_id;
    let mut bad_hold = peer_open();
    bad_hold.hold_time = 2;
    let mut no_family = peer_open();
    no_family.families = Some(vec![]);
    let cases = [
        (bad_version, 2, 1, vec![0, 4]),
        (bad_as, 2, 2, 64999u32.to_be_bytes().to_vec()),
        (bad_id, 2, 3, vec![]),
        (bad_hold, 2, 6, vec![]),
        (no_family, 2, 7, vec![1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1]),
    ];
    for (open, code, subcode, data) in cases {
        let mut h = Harness::active();
        let conn = h.reach(State::OpenSent).unwrap();
        let n = Notification::new(code, subcode, data);
        assert_eq!(
            h.ev(Event::Open(conn, open)),
            notified_and_closed(conn, n.clone())
        );
        assert_eq!(h.s.state(), State::Idle);
        assert_eq!(
            h.s.last_error().map(|e| e.reason.clone()),
            Some(DownReason::NotificationSent(n))
        );
    }
}

#[test]
fn a_session_without_common_family_comes_up_empty_when_configured_so() {
    let mut c = config();
    c.require_common_family = false;
    let mut h = Harness::new(c);
    let mut open = peer_open();
    open.families = Some(vec![]);
    let (_, n) = h.establish_with(open);
    assert!(n.families.is_empty());
}

/// Two connections in OpenSent, `first_open` receives the peer's OPEN first.
fn collide(local_id: Ipv4Addr, inbound_first: bool) -> (Harness, ConnId, ConnId, Vec<Action>) {
    let mut c = config();
    c.router_id = local_id;
    let mut h = Harness::new(c);
    let out_c = h.start();
    h.ev(Event::Connected(out_c));
    let (in_c, _) = h.accept();
    assert_eq!(h.s.connections().len(), 2);
    let first = if inbound_first { in_c } else { out_c };
    let out = h.ev(Event::Open(first, peer_open()));
    (h, out_c, in_c, out)
}

#[test]
fn a_collision_keeps_the_connection_of_the_higher_identifier() {
    let lower = Ipv4Addr::new(10, 0, 0, 1); // the peer is 10.0.0.2
    let higher = Ipv4Addr::new(10, 0, 0, 3);
    let collision = cease(Cease::ConnectionCollisionResolution);

    // Local lower: the peer's connection (inbound) survives, whichever OPEN comes first.
    let (mut h, out_c, in_c, out) = collide(lower, false);
    assert_eq!(out, notified_and_closed(out_c, collision.clone()));
    assert_eq!(h.s.state(), State::OpenSent);
    assert_eq!(
        h.ev(Event::Open(in_c, peer_open())),
        vec![Action::SendKeepalive(in_c)]
    );
    let (h, out_c, in_c, out) = collide(lower, true);
    let mut want = notified_and_closed(out_c, collision.clone());
    want.push(Action::SendKeepalive(in_c));
    assert_eq!(out, want);
    assert_eq!(h.s.state(), State::OpenConfirm);
    assert_eq!(h.s.counters().collisions, 1);

    // Local higher: our connection (outbound) survives.
    let (mut h, out_c, in_c, out) = collide(higher, true);
    assert_eq!(out, notified_and_closed(in_c, collision.clone()));
    assert_eq!(
        h.ev(Event::Open(out_c, peer_open())),
        vec![Action::SendKeepalive(out_c)]
    );
    let (mut h, out_c, in_c, out) = collide(higher, false);
    let mut want = notified_and_closed(in_c, collision.clone());
    want.push(Action::SendKeepalive(out_c));
    assert_eq!(out, want);
    assert!(matches!(
        h.ev(Event::Keepalive(out_c)).as_slice(),
        [Action::Established(c, _)] if *c == out_c
    ));
    assert_eq!(h.s.connections().len(), 1);
}

#[test]
fn a_collision_with_a_connection_in_open_confirm() {
    let collision = cease(Cease::ConnectionCollisionResolution);
    for (local_id, newcomer_wins) in [
        (Ipv4Addr::new(10, 0, 0, 1), true),
        (Ipv4Addr::new(10, 0, 0, 3), false),
    ] {
        let mut c = config();
        c.router_id = local_id;
        let mut h = Harness::new(c);
        let out_c = h.start();
        h.ev(Event::Connected(out_c));
        h.ev(Event::Open(out_c, peer_open()));
        assert_eq!(h.s.state(), State::OpenConfirm);
        // The peer's own connection arrives; we answer with an OPEN.
        let (in_c, out) = h.accept();
        assert!(matches!(out.as_slice(), [Action::SendOpen(c, _)] if *c == in_c));
        assert_eq!(h.s.state(), State::OpenConfirm);
        let out = h.ev(Event::Open(in_c, peer_open()));
        if newcomer_wins {
            let mut want = notified_and_closed(out_c, collision.clone());
            want.push(Action::SendKeepalive(in_c));
            assert_eq!(out, want);
        } else {
            assert_eq!(out, notified_and_closed(in_c, collision.clone()));
        }
        assert_eq!(h.s.state(), State::OpenConfirm);
        assert_eq!(h.s.connections().len(), 1);
    }
}

#[test]
fn established_wins_against_a_newcomer() {
    let mut h = Harness::active();
    let c = h.establish();
    let (newcomer, out) = h.accept();
    assert_eq!(
        out,
        notified_and_closed(newcomer, cease(Cease::ConnectionCollisionResolution))
    );
    assert_eq!(h.s.state(), State::Established);
    assert_eq!(h.s.established_conn(), Some(c));
    assert_eq!(h.s.connections().len(), 1);
}

#[test]
fn becoming_established_closes_every_other_connection() {
    let mut h = Harness::active();
    let out_c = h.start();
    h.ev(Event::Connected(out_c));
    h.ev(Event::Open(out_c, peer_open()));
    let (in_c, _) = h.accept();
    let out = h.ev(Event::Keepalive(out_c));
    assert_eq!(
        out[..2],
        notified_and_closed(in_c, cease(Cease::ConnectionCollisionResolution))[..]
    );
    assert!(matches!(out[2], Action::Established(c, _) if c == out_c));
    assert_eq!(out.len(), 3);
}

#[test]
fn an_open_on_the_peers_connection_abandons_our_attempt_in_progress() {
    let mut h = Harness::active();
    let out_c = h.start();
    let (in_c, _) = h.accept();
    assert_eq!(h.s.state(), State::OpenSent);
    assert_eq!(
        h.ev(Event::Open(in_c, peer_open())),
        vec![Action::Close(out_c), Action::SendKeepalive(in_c)]
    );
    assert_eq!(h.s.connections().len(), 1);
}

#[test]
fn a_second_inbound_connection_replaces_the_first() {
    let mut c = config();
    c.passive = true;
    let mut h = Harness::new(c);
    h.ev(Event::ManualStart);
    let (first, _) = h.accept();
    let (second, out) = h.accept();
    let mut want = notified_and_closed(first, cease(Cease::ConnectionCollisionResolution));
    want.push(Action::SendOpen(second, h.s.local_open().clone()));
    assert_eq!(out, want);
    assert_eq!(h.s.connections().len(), 1);
}

#[test]
fn idle_refuses_connections() {
    let mut h = Harness::active();
    let (c, out) = h.accept();
    assert_eq!(out, notified_and_closed(c, cease(Cease::ConnectionRejected)));
    // Also while waiting out the backoff.
    let conn = h.reach(State::OpenSent).unwrap();
    h.ev(Event::Notification(conn, notif(2, 2)));
    assert_eq!(h.s.state(), State::Idle);
    let (c, out) = h.accept();
    assert_eq!(out, notified_and_closed(c, cease(Cease::ConnectionRejected)));
}

#[test]
fn unexpected_messages_give_the_rfc_6608_subcodes() {
    type MakeEvent = fn(ConnId) -> Event;
    let cases: [(State, MakeEvent, u8); 8] = [
        (State::OpenSent, Event::Keepalive, 1),
        (State::OpenSent, Event::Update, 1),
        (State::OpenSent, Event::RouteRefresh, 1),
        (State::OpenConfirm, |c| Event::Open(c, peer_open()), 2),
        (State::OpenConfirm, Event::Update, 2),
        (State::OpenConfirm, Event::RouteRefresh, 2),
        (State::Established, |c| Event::Open(c, peer_open()), 3),
        // A second start of the session is no message: nothing happens.
        (State::Established, |_| Event::ManualStart, 0),
    ];
    for (state, event, subcode) in cases {
        let mut h = Harness::active();
        let c = h.reach(state).unwrap();
        let out = h.ev(event(c));
        if subcode == 0 {
            assert_eq!(out, vec![]);
            continue;
        }
        let n = notif(5, subcode);
        let mut want = notified_and_closed(c, n.clone());
        if state == State::Established {
            want.push(Action::Down {
                reason: DownReason::NotificationSent(n.clone()),
            });
        }
        assert_eq!(out, want, "{state}");
        assert_eq!(h.s.state(), State::Idle);
        assert_eq!(h.s.restart_at(), Some(h.secs(5)));
    }
}

#[test]
fn a_notification_from_the_peer_ends_the_connection_in_every_state() {
    for state in [State::OpenSent, State::OpenConfirm, State::Established] {
        let mut h = Harness::active();
        let c = h.reach(state).unwrap();
        let n = cease(Cease::AdministrativeShutdown);
        let out = h.ev(Event::Notification(c, n.clone()));
        let mut want = vec![Action::Close(c)];
        if state == State::Established {
            want.push(Action::Down {
                reason: DownReason::NotificationReceived(n.clone()),
            });
        }
        assert_eq!(out, want, "{state}");
        assert_eq!(h.s.state(), State::Idle);
        assert_eq!(
            h.s.last_error().unwrap().reason.to_string(),
            "notification received: cease/administrative shutdown"
        );
        assert_eq!(h.s.counters().received.notification, 1);
    }
}

#[test]
fn the_peer_closing_the_connection_in_each_state() {
    // Connect: Active, retry after ConnectRetry.
    let mut h = Harness::active();
    let c = h.reach(State::Connect).unwrap();
    assert_eq!(h.ev(Event::Closed(c, None)), vec![Action::Close(c)]);
    assert_eq!(h.s.state(), State::Active);
    assert_eq!(h.s.next_deadline(), Some(h.secs(RETRY)));
    // OpenSent: the same (RFC 4271 8.2.2 OpenSent, event 18), no backoff.
    let mut h = Harness::active();
    let c = h.reach(State::OpenSent).unwrap();
    h.now = h.secs(7);
    assert_eq!(h.ev(Event::Closed(c, None)), vec![Action::Close(c)]);
    assert_eq!(h.s.state(), State::Active);
    assert_eq!(h.s.restart_at(), None);
    assert_eq!(h.s.next_deadline(), Some(h.secs(7 + RETRY)));
    // OpenConfirm and Established: Idle with the backoff.
    for state in [State::OpenConfirm, State::Established] {
        let mut h = Harness::active();
        let c = h.reach(state).unwrap();
        let out = h.ev(Event::Closed(c, None));
        let mut want = vec![Action::Close(c)];
        if state == State::Established {
            want.push(Action::Down {
                reason: DownReason::PeerClosed,
            });
        }
        assert_eq!(out, want);
        assert_eq!(h.s.state(), State::Idle);
        assert_eq!(h.s.restart_at(), Some(h.secs(5)));
        assert_eq!(
            h.s.last_error().unwrap().reason.to_string(),
            "peer closed the connection"
        );
    }
}

#[test]
fn manual_stop_from_each_state() {
    let text = Some("maintenance".to_owned());
    let n = Notification::cease(Cease::AdministrativeShutdown, Some("maintenance"));
    for state in [
        State::Idle,
        State::Connect,
        State::Active,
        State::OpenSent,
        State::OpenConfirm,
        State::Established,
    ] {
        let mut h = Harness::active();
        let c = h.reach(state);
        let out = h.ev(Event::ManualStop {
            cease: Cease::AdministrativeShutdown,
            text: text.clone(),
        });
        let want = match (state, c) {
            (State::Connect, Some(c)) => vec![Action::Close(c)],
            (State::OpenSent | State::OpenConfirm, Some(c)) => notified_and_closed(c, n.clone()),
            (State::Established, Some(c)) => {
                let mut w = notified_and_closed(c, n.clone());
                w.push(Action::Down {
                    reason: DownReason::Stopped(n.clone()),
                });
                w
            }
            _ => vec![],
        };
        assert_eq!(out, want, "{state}");
        assert_eq!(h.s.state(), State::Idle);
        assert!(!h.s.is_started());
        assert_eq!(h.s.next_deadline(), None);
        assert_eq!(h.at(100_000), vec![]);
        if state != State::Idle {
            assert_eq!(
                h.s.last_error().unwrap().reason.to_string(),
                "stopped: cease/administrative shutdown: \"maintenance\""
            );
        }
    }
}

#[test]
fn reset_from_each_state_restarts_at_once() {
    let n = cease(Cease::AdministrativeReset);
    for state in [
        State::Connect,
        State::Active,
        State::OpenSent,
        State::OpenConfirm,
        State::Established,
    ] {
        let mut h = Harness::active();
        let c = h.reach(state);
        let mut out = h.ev(Event::Reset {
            cease: Cease::AdministrativeReset,
            text: None,
        });
        let Some(Action::Connect(new)) = out.pop() else {
            panic!("{state}: the reset should end with a new Connect: {out:?}");
        };
        assert_ne!(Some(new), c);
        let want = match (state, c) {
            (State::Connect, Some(c)) => vec![Action::Close(c)],
            (State::OpenSent | State::OpenConfirm, Some(c)) => notified_and_closed(c, n.clone()),
            (State::Established, Some(c)) => {
                let mut w = notified_and_closed(c, n.clone());
                w.push(Action::Down {
                    reason: DownReason::Reset(n.clone()),
                });
                w
            }
            _ => vec![],
        };
        assert_eq!(out, want, "{state}");
        assert_eq!(h.s.state(), State::Connect);
    }
    // A stopped session stays stopped; one waiting out the backoff starts now.
    let mut h = Harness::active();
    assert_eq!(
        h.ev(Event::Reset {
            cease: Cease::AdministrativeReset,
            text: None
        }),
        vec![]
    );
    assert_eq!(h.s.state(), State::Idle);
    let c = h.reach(State::OpenSent).unwrap();
    h.ev(Event::Notification(c, notif(6, 8)));
    assert!(h.s.restart_at().is_some());
    let out = h.ev(Event::Reset {
        cease: Cease::AdministrativeReset,
        text: None,
    });
    assert!(matches!(out.as_slice(), [Action::Connect(_)]));
    assert_eq!(h.s.restart_at(), None);
}

#[test]
fn events_for_unknown_connections_are_ignored() {
    let mut h = Harness::active();
    let c = h.establish();
    let stranger = ConnId(999);
    for e in [
        Event::Connected(stranger),
        Event::ConnectFailed(stranger, "x".into()),
        Event::Closed(stranger, None),
        Event::Open(stranger, peer_open()),
        Event::Keepalive(stranger),
        Event::Update(stranger),
        Event::Notification(stranger, notif(6, 2)),
        Event::RouteRefresh(stranger),
        Event::DecodeError(stranger, notif(1, 1)),
        // An id the session already uses cannot be accepted again.
        Event::Accepted(c),
        Event::Connected(c),
    ] {
        assert_eq!(h.ev(e.clone()), vec![], "{e:?}");
    }
    assert_eq!(h.s.state(), State::Established);
}

#[test]
fn down_reasons_read_well() {
    let cases = [
        (DownReason::HoldTimerExpired, "hold timer expired"),
        (
            DownReason::NotificationReceived(cease(Cease::AdministrativeReset)),
            "notification received: cease/administrative reset",
        ),
        (
            DownReason::NotificationSent(notif(5, 3)),
            "notification sent: finite state machine error/unexpected message in Established state",
        ),
        (DownReason::PeerClosed, "peer closed the connection"),
        (
            DownReason::ConnectionError("broken pipe".into()),
            "connection error: broken pipe",
        ),
    ];
    for (reason, text) in cases {
        assert_eq!(reason.to_string(), text);
    }
}

mod property {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    /// One step of a random run; `pick` chooses among the live connections (or a stranger).
    #[derive(Clone, Debug)]
    enum Step {
        Start,
        Stop,
        Reset,
        Accept,
        Connected(u8),
        ConnectFailed(u8),
        Closed(u8, bool),
        Open(u8, u8),
        Keepalive(u8),
        Update(u8),
        Notification(u8),
        RouteRefresh(u8),
        DecodeError(u8),
        Wait(u16),
        SentUpdate,
        /// The event that moves the picked connection forward (Connected, OPEN, KEEPALIVE).
        Progress(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Start),
            1 => Just(Step::Stop),
            1 => Just(Step::Reset),
            3 => Just(Step::Accept),
            4 => any::<u8>().prop_map(Step::Connected),
            1 => any::<u8>().prop_map(Step::ConnectFailed),
            1 => (any::<u8>(), any::<bool>()).prop_map(|(p, e)| Step::Closed(p, e)),
            5 => (any::<u8>(), any::<u8>()).prop_map(|(p, o)| Step::Open(p, o)),
            5 => any::<u8>().prop_map(Step::Keepalive),
            2 => any::<u8>().prop_map(Step::Update),
            1 => any::<u8>().prop_map(Step::Notification),
            1 => any::<u8>().prop_map(Step::RouteRefresh),
            1 => any::<u8>().prop_map(Step::DecodeError),
            4 => (0u16..20).prop_map(Step::Wait),
            1 => (0u16..300).prop_map(Step::Wait),
            1 => Just(Step::SentUpdate),
            10 => any::<u8>().prop_map(Step::Progress),
        ]
    }

    /// Mostly good OPENs from either side of the identifier comparison, some broken.
    fn open_variant(v: u8) -> PeerOpen {
        let mut o = peer_open();
        match v % 8 {
            0 => o.bgp_id = Ipv4Addr::new(10, 0, 0, 0),
            1 => o.hold_time = 0,
            2 => o.hold_time = 3,
            3 => o.version = 3,
            4 => o.families = None,
            5 => o.my_as = 1,
            _ => {}
        }
        o
    }

    /// What the caller knows of a connection, from the actions it was given.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Tcp {
        Connecting,
        Up,
    }

    fn check_actions(
        actions: &[Action],
        tcp: &mut HashMap<ConnId, Tcp>,
        closed: &mut HashSet<ConnId>,
        established: &mut bool,
    ) -> Result<(), TestCaseError> {
        for (i, a) in actions.iter().enumerate() {
            match a {
                Action::Connect(id) => {
                    prop_assert!(!tcp.contains_key(id) && !closed.contains(id));
                    tcp.insert(*id, Tcp::Connecting);
                }
                Action::Close(id) => {
                    prop_assert!(closed.insert(*id), "{id} closed twice");
                    tcp.remove(id);
                }
                Action::SendOpen(id, _) | Action::SendKeepalive(id) => {
                    prop_assert_eq!(tcp.get(id), Some(&Tcp::Up), "send on {} not up", id);
                }
                Action::SendNotification(id, _) => {
                    prop_assert_eq!(tcp.get(id), Some(&Tcp::Up));
                    prop_assert_eq!(actions.get(i + 1), Some(&Action::Close(*id)));
                }
                Action::Established(id, _) => {
                    prop_assert!(!*established);
                    prop_assert_eq!(tcp.get(id), Some(&Tcp::Up));
                    *established = true;
                }
                Action::Down { .. } => {
                    prop_assert!(*established);
                    *established = false;
                }
                Action::DeliverUpdate(id) | Action::DeliverRouteRefresh(id) => {
                    prop_assert!(*established);
                    prop_assert_eq!(tcp.get(id), Some(&Tcp::Up));
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_events_keep_the_session_consistent(
            passive in any::<bool>(),
            local_higher in any::<bool>(),
            steps in proptest::collection::vec(step(), 1..80),
        ) {
            let mut c = config();
            c.passive = passive;
            c.hold_time = 9;
            c.connect_retry = Duration::from_secs(7);
            c.backoff = Backoff {
                initial: Duration::from_secs(1),
                max: Duration::from_secs(8),
                stable_after: Duration::from_secs(20),
            };
            if local_higher {
                c.router_id = Ipv4Addr::new(10, 0, 0, 3);
            }
            let mut h = Harness::new(c);
            let mut tcp: HashMap<ConnId, Tcp> = HashMap::new();
            let mut closed: HashSet<ConnId> = HashSet::new();
            let mut established = false;
            for step in steps {
                // Mostly live connections as the caller sees them, sometimes one the session
                // never made.
                let mut ids: Vec<ConnId> = tcp.keys().copied().collect();
                ids.sort();
                let pick = |p: u8| match ids.get(usize::from(p) % ids.len().max(1)) {
                    Some(&id) if p < 224 => id,
                    _ => ConnId(10_000),
                };
                let actions = match step {
                    Step::Wait(secs) => {
                        let mut out = Vec::new();
                        let target = h.elapsed() + u64::from(secs);
                        // Fire every deadline on the way, as the caller's timer would.
                        let mut rounds = 0;
                        while let Some(d) = h.s.next_deadline() {
                            let due = (d - h.t0).as_secs();
                            if due > target {
                                break;
                            }
                            rounds += 1;
                            prop_assert!(rounds < 1000, "timers keep firing at {due}");
                            out.extend(h.at(due.max(h.elapsed())));
                        }
                        out.extend(h.at(target));
                        out
                    }
                    Step::Start => h.ev(Event::ManualStart),
                    Step::Stop => h.ev(Event::ManualStop {
                        cease: Cease::AdministrativeShutdown,
                        text: Some("bye".into()),
                    }),
                    Step::Reset => h.ev(Event::Reset {
                        cease: Cease::AdministrativeReset,
                        text: None,
                    }),
                    Step::Accept => {
                        let (id, out) = h.accept();
                        tcp.insert(id, Tcp::Up);
                        out
                    }
                    Step::Connected(p) => {
                        let id = pick(p);
                        if tcp.get(&id) == Some(&Tcp::Connecting) {
                            tcp.insert(id, Tcp::Up);
                        }
                        h.ev(Event::Connected(id))
                    }
                    Step::ConnectFailed(p) => h.ev(Event::ConnectFailed(pick(p), "refused".into())),
                    Step::Closed(p, err) => {
                        h.ev(Event::Closed(pick(p), err.then(|| "reset".to_owned())))
                    }
                    Step::Open(p, v) => h.ev(Event::Open(pick(p), open_variant(v))),
                    Step::Keepalive(p) => h.ev(Event::Keepalive(pick(p))),
                    Step::Update(p) => h.ev(Event::Update(pick(p))),
                    Step::Notification(p) => h.ev(Event::Notification(pick(p), notif(6, 2))),
                    Step::RouteRefresh(p) => h.ev(Event::RouteRefresh(pick(p))),
                    Step::DecodeError(p) => h.ev(Event::DecodeError(pick(p), notif(3, 1))),
                    Step::Progress(p) => {
                        let id = pick(p);
                        let state = h.s.connections().iter().find(|c| c.id == id).map(|c| c.state);
                        match state {
                            Some(State::Connect) => {
                                tcp.insert(id, Tcp::Up);
                                h.ev(Event::Connected(id))
                            }
                            Some(State::OpenSent) => h.ev(Event::Open(id, open_variant(p))),
                            _ => h.ev(Event::Keepalive(id)),
                        }
                    }
                    Step::SentUpdate => {
                        h.s.on_sent_update(h.now);
                        Vec::new()
                    }
                };
                // A connection reported closed, or an attempt reported failed, is gone.
                let gone = match step {
                    Step::Closed(p, _) => Some(pick(p)),
                    Step::ConnectFailed(p) if tcp.get(&pick(p)) == Some(&Tcp::Connecting) => {
                        Some(pick(p))
                    }
                    _ => None,
                };
                check_actions(&actions, &mut tcp, &mut closed, &mut established)?;
                if let Some(id) = gone {
                    prop_assert!(!h.s.connections().iter().any(|c| c.id == id));
                    prop_assert!(!tcp.contains_key(&id) || id == ConnId(10_000));
                }

                let conns = h.s.connections();
                let live: HashSet<ConnId> = conns.iter().map(|c| c.id).collect();
                let known: HashSet<ConnId> = tcp.keys().copied().collect();
                prop_assert!(live.is_subset(&known), "session {live:?} caller {known:?}");
                let past_open_sent = conns.iter().filter(|c| c.state > State::OpenSent).count();
                prop_assert!(past_open_sent <= 1, "{conns:?}");
                for dir in [Direction::Inbound, Direction::Outbound] {
                    prop_assert!(conns.iter().filter(|c| c.direction == dir).count() <= 1);
                }
                let state = h.s.state();
                prop_assert_eq!(state == State::Established, established);
                if state == State::Established {
                    prop_assert_eq!(conns.len(), 1);
                    prop_assert!(h.s.uptime(h.now).is_some());
                }
                if passive {
                    prop_assert!(!actions.iter().any(|a| matches!(a, Action::Connect(_))));
                }
                if !h.s.is_started() {
                    prop_assert!(conns.is_empty());
                    prop_assert_eq!(h.s.next_deadline(), None);
                }
                // Nothing is left to fire once the timers ran.
                if let Some(d) = h.s.next_deadline() {
                    prop_assert!(d > h.now || !matches!(step, Step::Wait(_)));
                }
            }
        }
    }
}
