//! Address keys as the trie sees them: IPv4 as `u32`, IPv6 as `u128`, most significant bit first.

use std::fmt::Debug;
use std::hash::Hash;

/// Bits consumed by one trie node below the direct-pointing array (Poptrie's 6-bit stride:
/// 64 slots, so a node's child and leaf bitmaps are one `u64` each).
pub const STRIDE: u32 = 6;

/// An address family's key. Implemented for `u32` (IPv4) and `u128` (IPv6) only.
pub trait Key: Copy + Eq + Ord + Hash + Debug + Default + Send + Sync + 'static {
    /// Address width in bits.
    const BITS: u32;
    /// Bits resolved by the direct-pointing top array: 18 for IPv4 (Poptrie18, 1 MiB), 20 for IPv6
    /// (4 MiB: a /32 then ends two strides below it and a /48 five, instead of three and six
    /// with 16 bits, which made IPv6 lookups inside table prefixes about 20% faster).
    const DIRECT_BITS: u32;

    /// Whether most lookups end at a compact root just below the direct array (IPv4, where the
    /// /19 to /24 routes of an /18 sit in one). Picks the batched-lookup strategy at compile time.
    const SHALLOW: bool;

    /// The direct-pointing array index: the key's top `DIRECT_BITS` bits.
    fn top(self) -> usize;
    /// The 6-bit stride value starting at bit `off` (0 = most significant). Bits past the end of
    /// the key read as zero. `off` must be below `BITS`.
    fn chunk(self, off: u32) -> usize;
    /// The key with every bit from `len` on cleared.
    fn masked(self, len: u32) -> Self;
    /// The first key of direct-array entry `index`.
    fn from_top(index: usize) -> Self;
    /// The key with the 6-bit stride value at `off` replaced by `value`.
    fn with_chunk(self, off: u32, value: usize) -> Self;
    /// Widening conversion used by tests and iteration.
    fn to_u128(self) -> u128;
    /// Narrowing conversion (keeps the low `BITS` bits).
    fn from_u128(v: u128) -> Self;
}

macro_rules! impl_key {
    ($t:ty, $direct:expr) => {
        impl_key!(
            $t,
            $direct,
            |key: $t, off: u32| ((key.wrapping_shl(off)) >> (<$t>::BITS - STRIDE)) as usize
        );
    };
    ($t:ty, $direct:expr, $chunk:expr) => {
        impl Key for $t {
            const BITS: u32 = <$t>::BITS;
            const DIRECT_BITS: u32 = $direct;
            const SHALLOW: bool = <$t>::BITS == 32;

            #[inline(always)]
            fn top(self) -> usize {
                (self >> (Self::BITS - Self::DIRECT_BITS)) as usize
            }

            #[inline(always)]
            fn chunk(self, off: u32) -> usize {
                // Shift the consumed bits out, then keep the next six; past the end zeros come in.
                let chunk = $chunk;
                chunk(self, off)
            }

            #[inline]
            fn masked(self, len: u32) -> Self {
                if len == 0 {
                    0
                } else if len >= Self::BITS {
                    self
                } else {
                    self & (<$t>::MAX << (Self::BITS - len))
                }
            }

            #[inline]
            fn from_top(index: usize) -> Self {
                (index as $t) << (Self::BITS - Self::DIRECT_BITS)
            }

            #[inline]
            fn with_chunk(self, off: u32, value: usize) -> Self {
                // The stride may run past the end of the key (IPv4 at bit 30, IPv6 at bit 124):
                // work in 128 bits, aligned so that bit 0 of the key is bit 127.
                let wide = (self as u128) << (128 - Self::BITS);
                let value = (value as u128) & 0x3f;
                let wide = if off + STRIDE <= 128 {
                    let shift = 128 - STRIDE - off;
                    (wide & !(0x3fu128 << shift)) | (value << shift)
                } else {
                    // Only the stride's top `128 - off` bits exist.
                    let real = 128 - off;
                    let mask = (1u128 << real) - 1;
                    (wide & !mask) | (value >> (STRIDE - real))
                };
                (wide >> (128 - Self::BITS)) as $t
            }

            #[inline]
            fn to_u128(self) -> u128 {
                self as u128
            }

            #[inline]
            fn from_u128(v: u128) -> Self {
                v as $t
            }
        }
    };
}

impl_key!(u32, 18);
// IPv6 strides start at 20 + 6k: all but the one at bit 62 lie within one 64-bit half, which
// is cut with two 64-bit shifts instead of variable 128-bit shifts.
impl_key!(u128, 20, |key: u128, off: u32| {
    if off <= 64 - STRIDE {
        ((((key >> 64) as u64) << off) >> (64 - STRIDE)) as usize
    } else if off >= 64 {
        (((key as u64) << (off & 63)) >> (64 - STRIDE)) as usize
    } else {
        (key.wrapping_shl(off) >> (128 - STRIDE)) as usize
    }
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_reads_six_bits_and_pads_with_zeros() {
        let k: u32 = 0b1011_0111_0000_0000_0000_0000_0000_0011;
        assert_eq!(k.chunk(0), 0b101101);
        assert_eq!(k.chunk(2), 0b110111);
        // Bit 30 leaves two real bits (11) and four padding zeros.
        assert_eq!(k.chunk(30), 0b110000);
        let k6: u128 = 0xf;
        assert_eq!(k6.chunk(124), 0b111100);
    }

    #[test]
    fn ipv6_chunks_agree_with_a_plain_128_bit_shift_on_both_halves_and_across_them() {
        let keys = [
            0u128,
            u128::MAX,
            0x2001_0db8_0000_0001_8000_0000_0000_0003,
            0x3u128 << 62,
            0xfu128 << 60,
        ];
        for k in keys {
            for off in (u128::DIRECT_BITS..128)
                .step_by(STRIDE as usize)
                .chain([58, 59, 63, 64])
            {
                let plain = (k.wrapping_shl(off) >> (128 - STRIDE)) as usize;
                assert_eq!(k.chunk(off), plain, "key {k:#x} off {off}");
            }
        }
        // The stride at bit 62 takes two bits from the upper half and four from the lower.
        let k: u128 = (0b11u128 << 64) | (0b1010u128 << 60);
        assert_eq!(k.chunk(62), 0b111010);
    }

    #[test]
    fn with_chunk_inverts_chunk() {
        let k: u32 = 0xdead_beef;
        for off in (0..32).step_by(6) {
            for v in [0usize, 1, 0x15, 0x3f] {
                let w = k.with_chunk(off, v);
                let expect_bits = if off + 6 > 32 {
                    v & !((1 << (off + 6 - 32)) - 1)
                } else {
                    v
                };
                assert_eq!(w.chunk(off), expect_bits, "off {off} v {v}");
            }
        }
        let k6: u128 = 0x2001_0db8 << 96;
        assert_eq!(k6.with_chunk(16, 0x3f).chunk(16), 0x3f);
        assert_eq!(k6.with_chunk(124, 0x3f).chunk(124), 0x3c);
    }

    #[test]
    fn masking_and_top() {
        assert_eq!(0xffff_ffffu32.masked(0), 0);
        assert_eq!(0xffff_ffffu32.masked(8), 0xff00_0000);
        assert_eq!(0xffff_ffffu32.masked(32), 0xffff_ffff);
        assert_eq!(0xc000_0000u32.top(), 0x30000);
        assert_eq!(u32::from_top(0x30000), 0xc000_0000);
        assert_eq!(u128::from_top(0x20010), 0x2001u128 << 112);
        assert_eq!((0x2001_0db8u128 << 96).top(), 0x20010);
    }
}
