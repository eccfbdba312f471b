//! The UMEM: one anonymous memory area cut into equal frames, which the kernel reads (TX) and
//! writes (RX) directly, plus userspace's record of who owns each frame.
//!
//! Ownership is tracked per frame ([`FrameOwner`]): a frame is on the free stack, held by
//! userspace, or handed to the kernel through one particular socket (on its fill or TX ring),
//! so that [`XskSocket::close`](super::XskSocket::close) can take back every frame that socket
//! still had. The socket operations that give
//! frames to the kernel take `&mut Umem`, so no frame slice can be alive at that moment, and they
//! refuse frames that are not userspace's; the accessors refuse frames the kernel owns. That is
//! what makes the byte accessors safe although the kernel writes this memory concurrently: the
//! kernel only ever touches frames it owns, and userspace can only see frames it owns. The cost
//! is one byte per frame, touched once per packet in each direction.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Weak};

use memmap2::{MmapOptions, MmapRaw};

use super::{Desc, XdpMode, XskError};

/// Frame sizes the kernel accepts in aligned mode that this module supports.
pub const FRAME_SIZES: [u32; 2] = [2048, 4096];

/// Size of a UMEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UmemConfig {
    /// Number of frames; keep more than the fill ring holds (the kernel publishes its fill
    /// consumer index lazily).
    pub frame_count: u32,
    /// 2048 or 4096 bytes.
    pub frame_size: u32,
}

impl Default for UmemConfig {
    fn default() -> Self {
        Self {
            frame_count: 8192,
            frame_size: 4096,
        }
    }
}

/// Who owns a frame now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameOwner {
    /// On the UMEM's free stack.
    Free,
    /// Held by userspace (allocated, received, or completed).
    User,
    /// On a fill or TX ring: the kernel may read or write it at any moment.
    Kernel,
}

/// Owner bytes: free, userspace, or `KERNEL + socket tag`.
pub(crate) const FREE: u8 = 0;
pub(crate) const USER: u8 = 1;
const KERNEL: u8 = 2;
/// Sockets one UMEM can serve (one tag each).
pub const MAX_SOCKETS: usize = (u8::MAX - KERNEL) as usize + 1;

/// The socket on which the kernel knows this memory as a UMEM, for `XDP_SHARED_UMEM`.
/// Weak: the UMEM does not keep the first socket (and its queue) alive; once that socket is
/// gone, the next socket registers the memory again.
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) fd: Weak<OwnedFd>,
    pub(crate) mode: XdpMode,
}

/// The UMEM of one worker, shared by its sockets.
#[derive(Debug)]
pub struct Umem {
    pub(crate) registration: Option<Registration>,
    /// Per frame: [`FREE`], [`USER`], or the owner byte of the socket the kernel has it through.
    owner: Box<[u8]>,
    /// Socket tags in use (bit per tag).
    tags: [u64; 4],
    free: Vec<u64>,
    /// Per frame: the [`Umem::frames_mut`] call that last lent it out, to refuse a batch that
    /// names one frame twice (two `&mut` to the same bytes).
    lent: Box<[u32]>,
    lend_epoch: u32,
    frame_size: u32,
    frame_shift: u32,
    frame_count: u32,
    /// The frames. Sockets hold clones, so the memory is unmapped only after the last socket
    /// using it has unmapped its rings and closed its descriptor.
    pub(crate) area: Arc<MmapRaw>,
}

impl Umem {
    /// Maps (and pre-faults) `frame_count * frame_size` bytes. Registration with the kernel
    /// happens when the first socket is created on it.
    pub fn new(cfg: UmemConfig) -> Result<Self, XskError> {
        if !FRAME_SIZES.contains(&cfg.frame_size) {
            return Err(XskError::Config(format!(
                "frame size {} is not one of {FRAME_SIZES:?}",
                cfg.frame_size
            )));
        }
        if cfg.frame_count == 0 {
            return Err(XskError::Config("a UMEM needs at least one frame".into()));
        }
        let len = u64::from(cfg.frame_count) * u64::from(cfg.frame_size);
        let len = usize::try_from(len)
            .map_err(|_| XskError::Config(format!("a UMEM of {len} bytes does not fit in memory")))?;
        let map = MmapOptions::new()
            .len(len)
            .populate()
            .map_anon()
            .map_err(|source| XskError::Sys {
                op: "mmap of the UMEM",
                source,
            })?;
        let frame_size = cfg.frame_size;
        // Lowest addresses on top of the stack: they come out first.
        let free = (0..u64::from(cfg.frame_count))
            .rev()
            .map(|i| i * u64::from(frame_size))
            .collect();
        Ok(Self {
            registration: None,
            owner: vec![FREE; cfg.frame_count as usize].into_boxed_slice(),
            lent: vec![0; cfg.frame_count as usize].into_boxed_slice(),
            lend_epoch: 0,
            tags: [0; 4],
            free,
            frame_size,
            frame_shift: frame_size.trailing_zeros(),
            frame_count: cfg.frame_count,
            area: Arc::new(MmapRaw::from(map)),
        })
    }

    pub fn frame_size(&self) -> u32 {
        self.frame_size
    }

    pub fn frame_count(&self) -> u32 {
        self.frame_count
    }

    /// Bytes of the area.
    pub fn len(&self) -> usize {
        self.area.len()
    }

    /// Never true (a UMEM has at least one frame); here for the `len` convention.
    pub fn is_empty(&self) -> bool {
        self.area.len() == 0
    }

    /// Frames on the free stack.
    pub fn free_frames(&self) -> usize {
        self.free.len()
    }

    /// The start of the frame containing `addr`.
    pub fn frame_base(&self, addr: u64) -> u64 {
        addr & !u64::from(self.frame_size - 1)
    }

    /// The frame index of `addr` if `[addr, addr + len)` lies inside one frame of this UMEM.
    pub fn frame_index(&self, addr: u64, len: usize) -> Option<usize> {
        let index = addr >> self.frame_shift;
        if index >= u64::from(self.frame_count) {
            return None;
        }
        let offset = addr & u64::from(self.frame_size - 1);
        let end = offset.checked_add(u64::try_from(len).ok()?)?;
        (end <= u64::from(self.frame_size)).then_some(index as usize)
    }

    /// Who owns the frame containing `addr`.
    pub fn owner(&self, addr: u64) -> Option<FrameOwner> {
        Some(match *self.owner.get(self.frame_index(addr, 0)?)? {
            FREE => FrameOwner::Free,
            USER => FrameOwner::User,
            _ => FrameOwner::Kernel,
        })
    }

    /// Takes a frame off the free stack; it is then userspace's.
    pub fn alloc(&mut self) -> Option<u64> {
        let addr = self.free.pop()?;
        self.set_owner(addr, USER);
        Some(addr)
    }

    /// Takes up to `out.len()` frames off the free stack; returns how many.
    pub fn alloc_batch(&mut self, out: &mut [u64]) -> usize {
        let mut n = 0;
        for slot in out.iter_mut() {
            let Some(addr) = self.alloc() else { break };
            *slot = addr;
            n += 1;
        }
        n
    }

    /// Puts a frame userspace holds back on the free stack (any address inside it).
    pub fn free(&mut self, addr: u64) -> Result<(), XskError> {
        match self.owner(addr) {
            Some(FrameOwner::User) => {
                let base = self.frame_base(addr);
                self.set_owner(base, FREE);
                self.free.push(base);
                Ok(())
            }
            Some(FrameOwner::Free) => Err(XskError::Frame {
                addr,
                why: "already free",
            }),
            Some(FrameOwner::Kernel) => Err(XskError::Frame {
                addr,
                why: "owned by the kernel",
            }),
            None => Err(XskError::Frame {
                addr,
                why: "outside the UMEM",
            }),
        }
    }

    /// `len` bytes at `addr`, if they lie inside one frame that the kernel does not own.
    pub fn frame(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let index = self.frame_index(addr, len)?;
        if *self.owner.get(index)? >= KERNEL {
            return None;
        }
        // SAFETY: `frame_index` proved `[addr, addr + len)` is inside the area (frame index <
        // frame_count, offset + len <= frame_size), so the pointer and length are in bounds of
        // a live mapping (`self.area` is kept alive by `self`). The frame is not the kernel's,
        // so the kernel neither reads nor writes it while the borrow of `self` lasts: handing a
        // frame to the kernel needs `&mut Umem`. Only shared borrows can coexist with this one.
        Some(unsafe { std::slice::from_raw_parts(self.area.as_ptr().add(addr as usize), len) })
    }

    /// Mutable `len` bytes at `addr`, if they lie inside one frame that the kernel does not own.
    pub fn frame_mut(&mut self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let index = self.frame_index(addr, len)?;
        if *self.owner.get(index)? >= KERNEL {
            return None;
        }
        // SAFETY: as in `frame`: in bounds of the live mapping, not the kernel's; `&mut self`
        // makes this the only userspace borrow of UMEM bytes. The raw pointer comes from
        // `MmapRaw::as_mut_ptr`, which never creates a reference to the whole area.
        Some(unsafe { std::slice::from_raw_parts_mut(self.area.as_mut_ptr().add(addr as usize), len) })
    }

    /// Mutable views of a batch of frames at once (for the forwarding pipeline, which works on
    /// a received burst in place): `out[i]` becomes the `descs[i].len` bytes at `descs[i].addr`.
    /// Stops at the first descriptor that is outside the UMEM, crosses a frame boundary, is
    /// not userspace's, or lies in a frame an earlier descriptor of the batch already named;
    /// returns how many leading entries of `out` were set.
    pub fn frames_mut<'a>(&'a mut self, descs: &[Desc], out: &mut [&'a mut [u8]]) -> usize {
        self.lend_epoch = self.lend_epoch.wrapping_add(1);
        if self.lend_epoch == 0 {
            self.lent.fill(0);
            self.lend_epoch = 1;
        }
        let base = self.area.as_mut_ptr();
        let mut n = 0;
        for (d, slot) in descs.iter().zip(out.iter_mut()) {
            let len = d.len as usize;
            let Some(index) = self.frame_index(d.addr, len) else {
                break;
            };
            if self.owner.get(index) != Some(&USER) {
                break;
            }
            match self.lent.get_mut(index) {
                Some(l) if *l != self.lend_epoch => *l = self.lend_epoch,
                _ => break,
            }
            // SAFETY: `frame_index` proved `[addr, addr + len)` lies inside one frame of the
            // live mapping (kept alive by `self.area`). The frame is userspace's, so the kernel
            // does not touch it while `self` stays mutably borrowed for `'a` (handing a frame
            // to the kernel needs `&mut Umem`). `lent` proved no earlier descriptor of this
            // call named the same frame, so the slices are disjoint, and the `&'a mut self`
            // borrow keeps every other accessor away while they live. The pointer comes from
            // `MmapRaw::as_mut_ptr`, which never creates a reference to the whole area.
            *slot = unsafe { std::slice::from_raw_parts_mut(base.add(d.addr as usize), len) };
            n += 1;
        }
        n
    }

    /// The bytes of a received or to-be-sent descriptor.
    pub fn desc_bytes(&self, desc: &Desc) -> Option<&[u8]> {
        self.frame(desc.addr, desc.len as usize)
    }

    pub(crate) fn set_owner(&mut self, addr: u64, to: u8) {
        if let Some(o) = self.frame_index(addr, 0).and_then(|i| self.owner.get_mut(i)) {
            *o = to;
        }
    }

    /// Moves a frame from owner byte `from` to `to` if that is its owner now; false otherwise
    /// (outside the UMEM, or owned by someone else).
    pub(crate) fn transfer(&mut self, addr: u64, len: usize, from: u8, to: u8) -> bool {
        match self.frame_index(addr, len).and_then(|i| self.owner.get_mut(i)) {
            Some(o) if *o == from => {
                *o = to;
                true
            }
            _ => false,
        }
    }

    /// Pops a free frame for a fill ring and marks it the kernel's through socket `kernel`.
    pub(crate) fn pop_for_kernel(&mut self, kernel: u8) -> Option<u64> {
        let addr = self.free.pop()?;
        self.set_owner(addr, kernel);
        Some(addr)
    }

    /// Takes a frame back from the kernel (socket `kernel`) onto the free stack.
    pub(crate) fn free_from_kernel(&mut self, addr: u64, kernel: u8) -> bool {
        let base = self.frame_base(addr);
        if self.transfer(base, 0, kernel, FREE) {
            self.free.push(base);
            true
        } else {
            false
        }
    }

    /// A new socket's owner byte, or `None` if [`MAX_SOCKETS`] are attached.
    pub(crate) fn attach(&mut self) -> Option<u8> {
        for (w, word) in self.tags.iter_mut().enumerate() {
            let bit = (!*word).trailing_zeros();
            if bit < 64 {
                let tag = w * 64 + bit as usize;
                if tag >= MAX_SOCKETS {
                    return None;
                }
                *word |= 1 << bit;
                return Some(KERNEL + tag as u8);
            }
        }
        None
    }

    /// Forgets a socket: every frame the kernel had through it goes back on the free stack.
    /// Only once the kernel can no longer touch them (the socket is closed). Returns how many.
    pub(crate) fn detach(&mut self, kernel: u8) -> usize {
        let mut n = 0;
        let size = u64::from(self.frame_size);
        for (i, o) in self.owner.iter_mut().enumerate() {
            if *o == kernel {
                *o = FREE;
                self.free.push(i as u64 * size);
                n += 1;
            }
        }
        let tag = usize::from(kernel.saturating_sub(KERNEL));
        if let Some(word) = self.tags.get_mut(tag / 64) {
            *word &= !(1u64 << (tag % 64));
        }
        n
    }

    /// True if `area` is this UMEM's memory.
    pub(crate) fn is_area(&self, area: &Arc<MmapRaw>) -> bool {
        Arc::ptr_eq(&self.area, area)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn umem(n: u32, size: u32) -> Umem {
        Umem::new(UmemConfig {
            frame_count: n,
            frame_size: size,
        })
        .unwrap()
    }

    #[test]
    fn config_is_checked() {
        for (n, s) in [(0, 2048), (4, 1024), (4, 3000), (4, 8192)] {
            let e = Umem::new(UmemConfig {
                frame_count: n,
                frame_size: s,
            })
            .unwrap_err();
            assert!(matches!(e, XskError::Config(_)), "{e}");
        }
    }

    #[test]
    fn frames_mut_lends_disjoint_user_frames_only() {
        let mut u = umem(4, 2048);
        let a = u.alloc().unwrap();
        let b = u.alloc().unwrap();
        let d = |addr, len| Desc {
            addr,
            len,
            options: 0,
        };
        {
            let mut out: [&mut [u8]; 3] = [&mut [], &mut [], &mut []];
            assert_eq!(u.frames_mut(&[d(a, 60), d(b + 64, 100)], &mut out), 2);
            out[0].fill(1);
            out[1].fill(2);
            assert_eq!(out[1].len(), 100);
        }
        assert!(u.frame(a, 60).unwrap().iter().all(|&x| x == 1));
        assert!(u.frame(b + 64, 100).unwrap().iter().all(|&x| x == 2));
        let mut lend = |descs: &[Desc]| {
            let mut out: [&mut [u8]; 3] = [&mut [], &mut [], &mut []];
            u.frames_mut(descs, &mut out)
        };
        // The same frame twice (even at another offset) would alias: the batch stops there.
        assert_eq!(lend(&[d(a, 60), d(b, 10), d(a + 100, 10)]), 2);
        // A free frame, a frame boundary crossing, an address outside the UMEM.
        let free = 3 * 2048;
        assert_eq!(lend(&[d(free, 60)]), 0);
        assert_eq!(lend(&[d(a + 2000, 100)]), 0);
        assert_eq!(lend(&[d(4 * 2048, 10)]), 0);
        // Each call starts afresh: the frames lent last time can be lent again.
        assert_eq!(lend(&[d(a, 60), d(b, 60)]), 2);
    }

    #[test]
    fn frame_address_checks() {
        let u = umem(4, 2048);
        assert_eq!(u.len(), 8192);
        assert_eq!(u.frame_index(0, 2048), Some(0));
        assert_eq!(u.frame_index(0, 2049), None, "crosses into the next frame");
        assert_eq!(u.frame_index(2048 + 256, 1792), Some(1), "offset inside a frame");
        assert_eq!(u.frame_index(2048 + 256, 1793), None);
        assert_eq!(u.frame_index(3 * 2048 + 2047, 1), Some(3));
        assert_eq!(u.frame_index(4 * 2048, 0), None, "past the end");
        assert_eq!(u.frame_index(u64::MAX, 1), None);
        assert_eq!(u.frame_index(2047, usize::MAX), None, "no overflow");
        assert_eq!(u.frame_base(3 * 2048 + 17), 3 * 2048);
        assert!(u.frame(8191, 1).is_some());
        assert!(u.frame(8191, 2).is_none());
    }

    #[test]
    fn ownership_and_free_stack() {
        let mut u = umem(4, 4096);
        assert_eq!(u.free_frames(), 4);
        let a = u.alloc().unwrap();
        assert_eq!(a, 0, "lowest address first");
        assert_eq!(u.owner(a), Some(FrameOwner::User));
        u.frame_mut(a + 10, 4).unwrap().copy_from_slice(b"xdp!");
        assert_eq!(u.frame(a + 10, 4).unwrap(), b"xdp!");
        // Hand it to the kernel: no access, cannot be freed.
        let k = u.attach().unwrap();
        assert!(u.transfer(a, 0, USER, k));
        assert_eq!(u.owner(a), Some(FrameOwner::Kernel));
        assert!(u.frame(a, 1).is_none());
        assert!(u.frame_mut(a, 1).is_none());
        assert!(matches!(u.free(a), Err(XskError::Frame { .. })));
        // Back from the kernel (an address inside the frame, as RX gives) onto the stack.
        assert!(!u.free_from_kernel(a + 256, k + 1), "another socket's frame");
        assert!(u.free_from_kernel(a + 256, k));
        assert!(!u.free_from_kernel(a, k), "not the kernel's any more");
        assert_eq!(u.free_frames(), 4);
        assert!(matches!(u.free(a), Err(XskError::Frame { .. })), "double free");
        let mut out = [0u64; 8];
        assert_eq!(u.alloc_batch(&mut out), 4);
        assert_eq!(&out[..4], &[0, 4096, 8192, 12288]);
        assert!(u.alloc().is_none());
        u.free(8192 + 100).unwrap();
        assert_eq!(
            u.alloc(),
            Some(8192),
            "freed by an inner address, stacked by base"
        );
        assert!(matches!(u.free(1 << 20), Err(XskError::Frame { .. })));
    }

    #[test]
    fn socket_tags_and_detach() {
        let mut u = umem(8, 2048);
        let tags: Vec<u8> = (0..MAX_SOCKETS).map(|_| u.attach().unwrap()).collect();
        assert!(u.attach().is_none(), "all tags taken");
        let (t0, t1) = (tags[0], tags[1]);
        for _ in 0..3 {
            u.pop_for_kernel(t0).unwrap();
        }
        u.pop_for_kernel(t1).unwrap();
        assert_eq!(u.free_frames(), 4);
        assert_eq!(u.detach(t0), 3);
        assert_eq!(u.free_frames(), 7);
        assert_eq!(u.attach(), Some(t0), "tag reused");
        assert_eq!(u.detach(t1), 1);
        assert_eq!(u.free_frames(), 8);
    }
}
