//! Offline cost of a BGP full table on the control side and in the engine, without sockets or
//! a second process: the real table (../shared/data/fib, shuffled as a sender's order would be)
//! goes into a `Speaker` and a `Rib` in UPDATE-sized groups sharing one attribute set, drained
//! every few thousand prefixes as the daemon's pump does; then the deltas go through an engine
//! `Programmer` in polls, published every 300k records and at the end (the writer loop's
//! cadence for a table). Prints the seconds of each part, three rounds.
//!
//!   cargo run --release -p xroute-benches --example bgp_load
//!   PER_UPDATE=900 DRAIN_EVERY=8000 POLL=4096 PUBLISH_EVERY=300000 cargo run ...
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use ipnet::IpNet;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use xroute_benches::env_count;
use xroute_common::delta::{Delta, RawRecord};
use xroute_control::bgp::decision::DecisionConfig;
use xroute_control::bgp::speaker::{Filter, PeerSpec, SessionInfo, Settings, Speaker};
use xroute_control::bgp::types::{AsPath, Family, NextHop, PathAttributes};
use xroute_control::rib::{Interface, Rib};
use xroute_engine::programmer::Programmer;
use xroute_engine::table;

fn main() {
    let path =
        table::shared_path(table::REAL_TABLE).expect("shared/data/fib/prefixes.txt.gz (set XROUTE_SHARED)");
    let mut prefixes: Vec<IpNet> = table::read_prefixes(&path)
        .expect("table")
        .iter()
        .map(|p| p.to_string().parse().expect("prefix"))
        .collect();
    prefixes.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
    // IPv4 first, then IPv6, as BIRD sends them.
    prefixes.sort_by_key(|p| p.addr().is_ipv6());
    let (per_update, drain_every) = (env_count("PER_UPDATE", 900), env_count("DRAIN_EVERY", 8000));
    let (poll, publish_every) = (env_count("POLL", 4096), env_count("PUBLISH_EVERY", 300_000));
    for round in 0..3 {
        let mut rib = Rib::new();
        rib.set_interface(
            0,
            Interface {
                name: "r0".into(),
                ifindex: 2,
                up: true,
                mtu: 1500,
                mac: [2, 0, 0, 0, 0, 1],
                addresses: vec![
                    "192.0.2.1/24".parse().unwrap(),
                    "2001:db8:1::1/64".parse().unwrap(),
                ],
            },
        )
        .unwrap();
        let mut out = Vec::new();
        rib.drain(1, &mut out);
        let mut deltas = vec![Delta::ResyncBegin { tag: 1 }];
        deltas.append(&mut out);
        deltas.push(Delta::ResyncEnd { tag: 1 });
        let mut speaker = Speaker::new(Settings {
            local_as: 64500,
            router_id: Ipv4Addr::new(192, 0, 2, 1),
            decision: DecisionConfig::default(),
            ebgp_distance: 20,
            ibgp_distance: 200,
        });
        let peer = speaker.add_peer(PeerSpec {
            address: "192.0.2.2".parse().unwrap(),
            remote_as: 64501,
            import: Filter::All,
            export: Filter::None,
            next_hop_self: false,
            max_prefixes: None,
        });
        speaker.peer_up(
            peer,
            SessionInfo {
                peer_id: Ipv4Addr::new(192, 0, 2, 2),
                families: vec![Family::Ipv4Unicast, Family::Ipv6Unicast],
                local_v4: Some(Ipv4Addr::new(192, 0, 2, 1)),
                local_v6: None,
            },
        );
        let attrs = |nh: IpAddr| {
            let mut a = PathAttributes::local(NextHop::new(nh));
            a.as_path = AsPath::sequence([64501]);
            Arc::new(a)
        };
        let (v4, v6) = (
            attrs("192.0.2.2".parse().unwrap()),
            attrs("2001:db8:1::2".parse().unwrap()),
        );
        let (mut t_receive, mut t_drain) = (0f64, 0f64);
        let mut since_drain = 0;
        for chunk in prefixes.chunks(per_update) {
            let a = if chunk[0].addr().is_ipv4() { &v4 } else { &v6 };
            let t = Instant::now();
            speaker
                .receive_grouped(peer, &mut rib, &[], &[(Arc::clone(a), chunk.to_vec())])
                .unwrap();
            t_receive += t.elapsed().as_secs_f64();
            since_drain += chunk.len();
            if since_drain >= drain_every {
                since_drain = 0;
                let t = Instant::now();
                rib.drain(deltas.len() as u64 + 1, &mut deltas);
                t_drain += t.elapsed().as_secs_f64();
            }
        }
        let t = Instant::now();
        rib.drain(deltas.len() as u64 + 1, &mut deltas);
        t_drain += t.elapsed().as_secs_f64();

        let t = Instant::now();
        let records: Vec<RawRecord> = deltas
            .iter()
            .enumerate()
            .map(|(i, d)| d.encode(i as u64 + 1))
            .collect();
        let t_encode = t.elapsed().as_secs_f64();
        let mut p = Programmer::new();
        let t = Instant::now();
        let (mut since_publish, mut publishes, mut t_last) = (0, 0, 0f64);
        let mut polls = records.chunks(poll).peekable();
        while let Some(part) = polls.next() {
            p.apply_staged(part);
            since_publish += part.len();
            if polls.peek().is_none() {
                let t = Instant::now();
                p.commit_routes();
                t_last = t.elapsed().as_secs_f64();
                publishes += 1;
            } else if since_publish >= publish_every {
                p.commit_routes();
                since_publish = 0;
                publishes += 1;
            }
        }
        let t_engine = t.elapsed().as_secs_f64();
        assert_eq!(p.stats().rejected, 0);
        assert_eq!(p.fib().len(), prefixes.len() + 4);
        println!(
            "round {round}: control {:.3} s (receive {t_receive:.3}, drain {t_drain:.3}, encode {t_encode:.3}); \
             engine {t_engine:.3} s in {publishes} publishes (the last {t_last:.3}); {} deltas, {} prefixes",
            t_receive + t_drain + t_encode,
            deltas.len(),
            speaker.prefix_count()
        );
    }
}
