//! The forwarding pipeline (`xroute_engine::packet::forward_batch`) on the real Internet table:
//! parse, validate (including the IPv4 header checksum), martian checks, flow hash, batched FIB
//! lookup, next-hop group member, adjacency, TTL/hop limit decrement with incremental checksum,
//! MAC rewrite. No I/O: this is the per-packet CPU cost a worker pays between RX and TX.
//!
//! Groups:
//! - `forward/v4_udp64`: batches of 64 IPv4 UDP frames of 64 bytes;
//! - `forward/mixed_udp64`: the same with every other frame IPv6 (64-byte frames too).
//!
//! Destinations are uniformly random table prefixes with random host bits, sources another such
//! address, ports random; every adjacency is resolved, so every frame ends as `Tx`. The frames
//! sit in a pool of 4096 batches (16 MiB, one cache line each as in a UMEM; far beyond L2,
//! though within a large L3) walked in order, and the 262,144 destinations spread over the whole
//! table, so neither lookups nor headers are all cache hits. Before each use a frame's TTL
//! (and IPv4 checksum) is restored: three byte stores per frame, inside the timed loop and so
//! counted against the pipeline. Throughput is reported in packets (elements) per second.
//!
//! Run: `cargo bench -p xroute-benches --bench forward`.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;
use xroute_benches::{build_xroute, AddrSets, Table, GROUPS, SEED};
use xroute_engine::fib::{AdjacencyId, FibWriter};
use xroute_engine::packet::wire::{ethertype, protocol, EthernetFrame, Ipv4Packet, Ipv6Packet, UdpPacket};
use xroute_engine::packet::{forward_batch, Scratch, Verdict, MAX_BATCH};

const FRAME: usize = 64;
const BATCHES: usize = 4096;
const TTL: u8 = 64;

/// One frame in its own cache line, as UMEM chunks are aligned.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Frame([u8; FRAME]);

impl AsMut<[u8]> for Frame {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

fn v4_frame(src: u32, dst: u32, sport: u16, dport: u16) -> Frame {
    let mut f = Frame([0u8; FRAME]);
    let mut e = EthernetFrame::new_unchecked(&mut f.0[..]);
    e.set_dst_addr([0x02, 0, 0, 0, 0, 0xfe]);
    e.set_src_addr([0x02, 0, 0, 0, 0, 0xfd]);
    e.set_ethertype(ethertype::IPV4);
    let len = FRAME - 14;
    let mut ip = Ipv4Packet::new_unchecked(&mut f.0[14..]);
    ip.set_header_len(20);
    ip.set_total_len(len as u16);
    ip.set_frag(true, false, 0);
    ip.set_ttl(TTL);
    ip.set_protocol(protocol::UDP);
    ip.set_src_addr(Ipv4Addr::from(src));
    ip.set_dst_addr(Ipv4Addr::from(dst));
    ip.fill_checksum();
    let mut u = UdpPacket::new_checked(&mut f.0[34..]).expect("room for UDP");
    u.set_src_port(sport);
    u.set_dst_port(dport);
    u.set_len((len - 20) as u16);
    f
}

fn v6_frame(src: u128, dst: u128, sport: u16, dport: u16) -> Frame {
    let mut f = Frame([0u8; FRAME]);
    let mut e = EthernetFrame::new_unchecked(&mut f.0[..]);
    e.set_dst_addr([0x02, 0, 0, 0, 0, 0xfe]);
    e.set_src_addr([0x02, 0, 0, 0, 0, 0xfd]);
    e.set_ethertype(ethertype::IPV6);
    let payload = FRAME - 14 - 40;
    let mut ip = Ipv6Packet::new_unchecked(&mut f.0[14..]);
    ip.set_version_tc_flow(0, 0);
    ip.set_payload_len(payload as u16);
    ip.set_next_header(protocol::UDP);
    ip.set_hop_limit(TTL);
    ip.set_src_addr(Ipv6Addr::from(src));
    ip.set_dst_addr(Ipv6Addr::from(dst));
    let mut u = UdpPacket::new_checked(&mut f.0[54..]).expect("room for UDP");
    u.set_src_port(sport);
    u.set_dst_port(dport);
    u.set_len(payload as u16);
    f
}

/// The real table with every adjacency resolved.
fn fib(table: &Table) -> FibWriter {
    let mut fib = build_xroute(&table.routes, GROUPS);
    for i in 0..GROUPS {
        let id = AdjacencyId(i);
        let mut a = fib.adjacency(id).expect("synthetic adjacency");
        a.dst_mac = Some([0x02, 0xbb, 0, 0, (i >> 8) as u8, i as u8]);
        fib.set_adjacency(id, a).expect("resolving an adjacency");
    }
    fib
}

/// `BATCHES * MAX_BATCH` frames; every `v6_every`-th one IPv6 (0: none). The second return
/// value is each frame's pristine (TTL byte, checksum bytes) for re-arming.
fn pool(addrs: &AddrSets, v6_every: usize) -> (Vec<Frame>, Vec<[u8; 3]>) {
    let mut rng = SmallRng::seed_from_u64(SEED ^ 0xf0);
    let n = BATCHES * MAX_BATCH;
    let mut frames = Vec::with_capacity(n);
    for i in 0..n {
        let (sport, dport) = (rng.gen(), rng.gen());
        let f = if v6_every != 0 && i % v6_every == 0 {
            let len = addrs.v6_inside.len();
            v6_frame(
                addrs.v6_inside[(i + len / 2) % len],
                addrs.v6_inside[i % len],
                sport,
                dport,
            )
        } else {
            let len = addrs.v4_inside.len();
            v4_frame(
                addrs.v4_inside[(i + len / 2) % len],
                addrs.v4_inside[i % len],
                sport,
                dport,
            )
        };
        frames.push(f);
    }
    let arm = frames.iter().map(|f| [f.0[22], f.0[24], f.0[25]]).collect();
    (frames, arm)
}

/// Restores TTL/hop limit (and the IPv4 checksum) of a batch.
#[inline]
fn rearm(frames: &mut [Frame], arm: &[[u8; 3]]) {
    for (Frame(f), a) in frames.iter_mut().zip(arm) {
        if f[12] == 0x08 {
            f[22] = a[0];
            f[24] = a[1];
            f[25] = a[2];
        } else {
            f[21] = TTL;
        }
    }
}

fn forward(c: &mut Criterion) {
    let table = Table::load();
    let fib = fib(&table);
    let addrs = AddrSets::new(&table, BATCHES * MAX_BATCH);
    let mut g = c.benchmark_group("forward");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(MAX_BATCH as u64));
    for (name, v6_every) in [("v4_udp64", 0), ("mixed_udp64", 2)] {
        let (mut frames, arm) = pool(&addrs, v6_every);
        let mut reader = fib.reader().expect("a FIB reader");
        let mut scratch = Box::new(Scratch::new(SEED));
        let mut out = [Verdict::ToKernel; MAX_BATCH];
        // Every frame of the pool must be forwarded, or the figure would measure something else.
        {
            let view = reader.view();
            let mut check = frames.clone();
            for batch in check.chunks_mut(MAX_BATCH) {
                forward_batch(batch, &view, &mut out, &mut scratch);
                for v in &out {
                    assert!(
                        matches!(v, Verdict::Tx { .. }),
                        "{name}: a frame was not forwarded: {v:?}"
                    );
                }
            }
        }
        let mut next = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                let i = next;
                next = (next + 1) % BATCHES;
                let range = i * MAX_BATCH..(i + 1) * MAX_BATCH;
                let batch = &mut frames[range.clone()];
                rearm(batch, &arm[range]);
                let view = reader.view();
                forward_batch(batch, &view, &mut out, &mut scratch);
                black_box(&out);
            });
        });
    }
    g.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
