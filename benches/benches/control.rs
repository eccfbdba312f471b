//! The control path's parts, on the real table: the RIB computing deltas, the shared-memory ring
//! carrying them, the engine applying them to the FIB. `scripts/bench-control.sh` measures the
//! same path end to end between the two processes.
//!
//! - `rib/full_table_upsert_drain`: 1.06M static routes into an empty RIB, then one drain that
//!   yields every delta (routes per second).
//! - `channel/push_poll_decode`: records through the ring, encode to decode, one thread.
//! - `engine/apply_full_table`: an engine applying a full replay's records to an empty FIB.
//!
//! Run: `cargo bench -p xroute-benches --bench control`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ipnet::IpNet;
use std::hint::black_box;
use std::time::Duration;
use xroute_common::delta::{Delta, RawRecord};
use xroute_common::shm::{ChannelFile, Consumer, Producer};
use xroute_control::rib::{Interface, NextHopSpec, Protocol, Rib, Route, Target};
use xroute_engine::programmer::Programmer;
use xroute_engine::table;

fn table_prefixes() -> Vec<IpNet> {
    let path =
        table::shared_path(table::REAL_TABLE).expect("shared/data/fib/prefixes.txt.gz (set XROUTE_SHARED)");
    table::read_prefixes(&path)
        .expect("table")
        .iter()
        .map(|p| p.to_string().parse().expect("prefix"))
        .collect()
}

fn rib_with_interface() -> Rib {
    let mut rib = Rib::new();
    rib.set_interface(
        0,
        Interface {
            name: "eth0".into(),
            ifindex: 2,
            up: true,
            mtu: 1500,
            mac: [2, 0, 0, 0, 0, 1],
            addresses: vec![
                "198.18.0.1/24".parse().unwrap(),
                "2001:db8:ff::1/64".parse().unwrap(),
            ],
        },
    )
    .unwrap();
    rib
}

fn static_via(prefix: &IpNet) -> Route {
    let via = if prefix.addr().is_ipv4() {
        "198.18.0.2".parse().unwrap()
    } else {
        "2001:db8:ff::2".parse().unwrap()
    };
    Route {
        protocol: Protocol::Static,
        id: 1,
        distance: 1,
        metric: 0,
        target: Target::hops(vec![NextHopSpec {
            via: Some(via),
            port: None,
            weight: 1,
        }]),
    }
}

fn benches(c: &mut Criterion) {
    let prefixes = table_prefixes();
    let n = prefixes.len() as u64;

    let mut g = c.benchmark_group("rib");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Elements(n));
    g.bench_function("full_table_upsert_drain", |b| {
        b.iter_batched(
            rib_with_interface,
            |mut rib| {
                for p in &prefixes {
                    rib.upsert(*p, static_via(p)).unwrap();
                }
                let mut out = Vec::new();
                rib.drain(1, &mut out);
                assert!(out.len() as u64 > n);
                (rib, out)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();

    // The replay a restarted engine receives, as the RIB produces it.
    let mut rib = rib_with_interface();
    for p in &prefixes {
        rib.upsert(*p, static_via(p)).unwrap();
    }
    let mut replay = vec![Delta::ResyncBegin { tag: 1 }];
    rib.snapshot(2, &mut replay);
    replay.push(Delta::ResyncEnd { tag: 1 });
    drop(rib);
    let records: Vec<RawRecord> = replay
        .iter()
        .enumerate()
        .map(|(i, d)| d.encode(i as u64 + 1))
        .collect();

    let mut g = c.benchmark_group("channel");
    let path = std::env::temp_dir().join(format!("xroute-bench-channel-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut producer = Producer::attach(ChannelFile::open(&path, 1 << 16).unwrap()).unwrap();
    let mut consumer = Consumer::attach(ChannelFile::open(&path, 1 << 16).unwrap()).unwrap();
    const BATCH: usize = 4096;
    let chunk: Vec<Delta> = replay.iter().skip(100).take(BATCH).copied().collect();
    let mut out: Vec<RawRecord> = Vec::with_capacity(BATCH);
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("push_poll_decode", |b| {
        b.iter(|| {
            assert_eq!(producer.push(&chunk), BATCH);
            out.clear();
            consumer.poll(&mut out, BATCH);
            let mut sum = 0u64;
            for r in &out {
                if let Ok((seq, _)) = Delta::decode(r) {
                    sum += seq;
                }
            }
            consumer.commit(0);
            black_box(sum)
        })
    });
    g.finish();
    drop((producer, consumer));
    let _ = std::fs::remove_file(&path);

    let mut g = c.benchmark_group("engine");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("apply_full_table", |b| {
        b.iter_batched(
            Programmer::new,
            |mut p| {
                for part in records.chunks(16_384) {
                    p.apply(part);
                }
                assert_eq!(p.stats().rejected, 0);
                assert_eq!(p.fib().len() as u64, n + 4);
                p
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(control, benches);
criterion_main!(control);
