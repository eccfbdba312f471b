//! xroute's XDP program (`src/xdp.bpf.c`) and its loader.
//!
//! The program sends transit IPv4/IPv6 to the AF_XDP socket of the receiving queue (an XSKMAP
//! entry the engine registers) and everything the engine does not own to the kernel: ARP and
//! other EtherTypes, the router's own addresses (a hash map per family that the engine fills),
//! multicast, broadcast, IPv6 link-local, and frames it cannot parse. IPv4/IPv6 frames too short
//! for their header or with the wrong version go to the engine, which counts them as drops (the
//! kernel would drop them too, less visibly). A transit frame arriving on a queue with no socket
//! goes to the kernel, and is counted.
//!
//! The program is attached through a BPF link: it is detached when the [`XdpProgram`] is dropped,
//! and also when the process dies, however it dies (the kernel closes the link's descriptor), so
//! a crashed engine never leaves an interface steering packets into a socket nobody reads.

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags};
use std::mem::MaybeUninit;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The generated skeleton (libbpf-cargo); its `unsafe` is libbpf-rs's, not ours.
#[allow(
    unsafe_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks,
    missing_debug_implementations,
    dead_code
)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/xdp.skel.rs"));
}

/// The program's counters, summed over CPUs. Numbering matches `enum xr_counter` in the C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Every frame the program saw.
    Rx = 0,
    /// Passed to the kernel on purpose (own addresses, multicast, ARP, unparsable...).
    ToKernel = 1,
    /// Redirected to the queue's AF_XDP socket.
    ToXsk = 2,
    /// Transit, but no socket on the queue: passed to the kernel.
    NoSocket = 3,
    /// Not IPv4/IPv6 (also counted in `ToKernel`).
    NotIp = 4,
}

/// Number of counters.
pub const COUNTERS: usize = 5;

/// Why the program could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("interface {0}: no such interface in this network namespace")]
    NoInterface(String),
    #[error("loading the XDP program: {0}{hint}", hint = load_hint(.0))]
    Load(libbpf_rs::Error),
    #[error(
        "interface {name}: attaching XDP failed: {source} (another XDP program attached, or no XDP support?)"
    )]
    Attach { name: String, source: libbpf_rs::Error },
    #[error("XDP map {map}: {source}")]
    Map {
        map: &'static str,
        source: libbpf_rs::Error,
    },
}

/// What to do about a refused load. EPERM is a missing capability (maps, the XSKMAP and the
/// program need CAP_BPF, the XSKMAP and an XDP program also CAP_NET_ADMIN); EACCES is the
/// verifier refusing the program, whose log libbpf has printed just before.
fn load_hint(e: &libbpf_rs::Error) -> &'static str {
    if e.kind() == libbpf_rs::ErrorKind::PermissionDenied {
        "; it needs CAP_BPF and CAP_NET_ADMIN: run as root or grant them (AmbientCapabilities= in \
         deploy/systemd/xroute-engine.service); if a verifier log is printed above, the kernel \
         refused the program itself"
    } else {
        ""
    }
}

/// The XDP program, loaded and attached to one interface.
pub struct XdpProgram {
    skel: skel::XdpSkel<'static>,
    link: Option<Link>,
    interface: String,
    ifindex: u32,
}

impl std::fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpProgram")
            .field("interface", &self.interface)
            .field("ifindex", &self.ifindex)
            .field("attached", &self.link.is_some())
            .finish()
    }
}

/// The interface index of `name` in the calling thread's network namespace (through the
/// kernel, not /sys, whose view belongs to whoever mounted it).
#[allow(unsafe_code)]
pub fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; if_nametoindex only
    // reads it and returns 0 when there is no such interface.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}

impl XdpProgram {
    /// Loads the program and attaches it to `interface` (driver mode where the driver has it;
    /// veth does).
    pub fn attach(interface: &str) -> Result<Self, XdpError> {
        let ifindex = ifindex(interface).ok_or_else(|| XdpError::NoInterface(interface.to_string()))?;
        // The skeleton borrows the storage of its open object for as long as it lives; the
        // storage is one pointer, so it is leaked rather than kept in a self-referential struct.
        let storage: &'static mut MaybeUninit<libbpf_rs::OpenObject> =
            Box::leak(Box::new(MaybeUninit::uninit()));
        let open = skel::XdpSkelBuilder::default()
            .open(storage)
            .map_err(XdpError::Load)?;
        let skel = open.load().map_err(XdpError::Load)?;
        let link = skel
            .progs
            .xroute_xdp
            .attach_xdp(ifindex as i32)
            .map_err(|source| XdpError::Attach {
                name: interface.to_string(),
                source,
            })?;
        Ok(Self {
            skel,
            link: Some(link),
            interface: interface.to_string(),
            ifindex,
        })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Replaces the set of the router's own addresses (traffic to them goes to the kernel).
    pub fn set_local_addresses(&mut self, addrs: &[IpAddr]) -> Result<(), XdpError> {
        let maps = &self.skel.maps;
        for (map, name) in [
            (&maps.xr_local_v4, "xr_local_v4"),
            (&maps.xr_local_v6, "xr_local_v6"),
        ] {
            let keys: Vec<Vec<u8>> = map.keys().collect();
            for k in keys {
                map.delete(&k)
                    .map_err(|source| XdpError::Map { map: name, source })?;
            }
        }
        for a in addrs {
            let (map, name, key) = match a {
                IpAddr::V4(v4) => (&maps.xr_local_v4, "xr_local_v4", v4.octets().to_vec()),
                IpAddr::V6(v6) => (&maps.xr_local_v6, "xr_local_v6", v6.octets().to_vec()),
            };
            map.update(&key, &[1], MapFlags::ANY)
                .map_err(|source| XdpError::Map { map: name, source })?;
        }
        Ok(())
    }

    /// Steers transit traffic arriving on `queue` to the AF_XDP socket `fd`.
    pub fn register_socket(&mut self, queue: u32, fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        let value = (fd.as_raw_fd() as u32).to_ne_bytes();
        self.skel
            .maps
            .xr_xsks
            .update(&queue.to_ne_bytes(), &value, MapFlags::ANY)
            .map_err(|source| XdpError::Map {
                map: "xr_xsks",
                source,
            })
    }

    /// Stops steering `queue` to a socket (its transit traffic goes to the kernel again).
    pub fn unregister_socket(&mut self, queue: u32) -> Result<(), XdpError> {
        match self.skel.maps.xr_xsks.delete(&queue.to_ne_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(XdpError::Map {
                map: "xr_xsks",
                source,
            }),
        }
    }

    /// The counters, summed over CPUs, indexed by [`Counter`].
    pub fn counters(&self) -> Result<[u64; COUNTERS], XdpError> {
        let mut out = [0u64; COUNTERS];
        for (i, slot) in out.iter_mut().enumerate() {
            let per_cpu = self
                .skel
                .maps
                .xr_counters
                .lookup_percpu(&(i as u32).to_ne_bytes(), MapFlags::ANY)
                .map_err(|source| XdpError::Map {
                    map: "xr_counters",
                    source,
                })?
                .unwrap_or_default();
            *slot = per_cpu
                .iter()
                .filter_map(|v| v.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_ne_bytes))
                .sum();
        }
        Ok(out)
    }

    /// Detaches now (dropping does the same).
    pub fn detach(mut self) {
        self.link.take();
    }
}
