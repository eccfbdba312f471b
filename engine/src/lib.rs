//! xroute's data plane.
//!
//! - [`fib`]: the forwarding table (Poptrie for IPv4 and IPv6, next-hop groups, adjacencies),
//!   written by one thread and read lock-free by the forwarding workers.
//! - [`programmer`]: applies the control process's deltas (from the shared-memory channel) to
//!   the FIB, including full replays after either process restarts.
//! - [`service`]: the engine process's side of the channel: the FIB writer loop and the query
//!   socket.
//! - [`packet`]: the per-packet forwarding pipeline (parse, validate, batched FIB lookup, TTL
//!   and MAC rewrite, ICMP errors, IPv4 fragmentation) the workers run on batches of frames,
//!   with no I/O.
//! - [`neighbor`]: the workers' lock-free copy of the kernel's neighbour table (the kernel does
//!   ARP and IPv6 ND) and their hold queues for frames waiting for a next hop's MAC.
//! - [`dataplane`]: the running data plane: XDP on the ports, AF_XDP sockets, the pinned
//!   forwarding workers and the slow path (neighbours through the kernel, local addresses).
//! - [`netlink`]: rtnetlink for the kernel's neighbour table (resolve requests, dumps, events)
//!   and interface addresses.
//! - [`cpu`]: start-up checks for the CPU features the build assumes.
//! - [`table`]: reading prefix lists (such as a full Internet table) from files.
//! - [`xsk`]: AF_XDP sockets over raw syscalls: the UMEM and its frame ownership, the four
//!   rings, bind with zero-copy or copy mode, and batched RX/TX/fill/completion.

pub mod cpu;
pub mod dataplane;
pub mod fib;
pub mod neighbor;
pub mod netlink;
pub mod packet;
pub mod programmer;
pub mod service;
pub mod table;
pub mod xsk;
