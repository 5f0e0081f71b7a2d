//! CRC32C arithmetic on a batch: moving a batch's CRC across a new base
//! offset from the change alone, without reading the body again. Owns no
//! batch layout beyond the CRC's range (see the parent module).
//!
//! CRC32C is affine: for two messages of equal length,
//! `crc(a) ^ crc(b) = raw(a ^ b)`, where `raw` is the CRC with a zero
//! initial value and no final inversion. A new base offset changes only
//! the first 8 bytes of the CRC's range, so `a ^ b` is those 8 bytes of
//! difference followed by `n` zero bytes, and `raw` of that is
//! `raw(diff) · x^(8n) mod P`: two multiplications of 32-bit polynomials
//! instead of a pass over the `n` bytes.

/// The CRC32C (Castagnoli) polynomial, bit-reflected.
const POLY: u32 = 0x82F6_3B78;

/// `a · b mod P`, both bit-reflected (bit 31 is `x^0`). Branch-free:
/// 32 rounds of shifts and masks.
const fn mul_mod(a: u32, mut b: u32) -> u32 {
    let mut p = 0u32;
    let mut i = 0;
    while i < 32 {
        // All ones when a has the term x^i.
        let take = ((a >> (31 - i)) & 1).wrapping_neg();
        p ^= b & take;
        // b · x
        b = (b >> 1) ^ (POLY & (b & 1).wrapping_neg());
        i += 1;
    }
    p
}

/// `ZEROS[j][i] = x^(8 · i · 256^j) mod P`: the effect of `i · 256^j` zero
/// bytes on a raw CRC, so `n` zero bytes take one entry per byte of `n`
/// (4 KiB of tables, computed at compile time).
const ZEROS: [[u32; 256]; 4] = {
    let mut t = [[0u32; 256]; 4];
    let mut base = 1u32 << 23; // x^8: 8 zero bits
    let mut j = 0;
    while j < 4 {
        t[j][0] = 1 << 31; // x^0
        let mut i = 1;
        while i < 256 {
            t[j][i] = mul_mod(t[j][i - 1], base);
            i += 1;
        }
        // x^(8 · 256^(j+1))
        base = mul_mod(t[j][255], base);
        j += 1;
    }
    t
};

/// `x^(8n) mod P`: the effect of `n` zero bytes on a raw CRC.
fn x_pow_8n(n: u32) -> u32 {
    let [b0, b1, b2, b3] = n.to_le_bytes();
    let mut p = ZEROS[0][b0 as usize];
    if b1 != 0 {
        p = mul_mod(p, ZEROS[1][b1 as usize]);
    }
    if b2 != 0 {
        p = mul_mod(p, ZEROS[2][b2 as usize]);
    }
    if b3 != 0 {
        p = mul_mod(p, ZEROS[3][b3 as usize]);
    }
    p
}

/// The CRC of a message after its first 8 bytes changed from `old` to
/// `new`, given its CRC before (`crc`) and the `n` bytes that follow the
/// 8. Correct exactly when `crc` was: a wrong CRC stays wrong.
pub(super) fn crc_after_change(crc: u32, old: [u8; 8], new: [u8; 8], n: u32) -> u32 {
    let mut diff = [0u8; 8];
    for (d, (o, w)) in diff.iter_mut().zip(old.iter().zip(new.iter())) {
        *d = o ^ w;
    }
    if diff == [0; 8] {
        return crc;
    }
    let raw = crc32c::crc32c(&diff) ^ crc32c::crc32c(&[0u8; 8]);
    crc ^ mul_mod(raw, x_pow_8n(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_a_full_pass(
            body in proptest::collection::vec(any::<u8>(), 0..3000),
            old in any::<u64>(),
            new in any::<u64>(),
        ) {
            let mut a = old.to_le_bytes().to_vec();
            a.extend_from_slice(&body);
            let mut b = new.to_le_bytes().to_vec();
            b.extend_from_slice(&body);
            let moved = crc_after_change(
                crc32c::crc32c(&a),
                old.to_le_bytes(),
                new.to_le_bytes(),
                body.len() as u32,
            );
            prop_assert_eq!(moved, crc32c::crc32c(&b));
        }
    }

    #[test]
    fn large_bodies_match_a_full_pass() {
        for n in [0usize, 1, 7, 4096, 100_000, (8 << 20) + 13] {
            let body: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let mut a = 3u64.to_le_bytes().to_vec();
            a.extend_from_slice(&body);
            let mut b = u64::MAX.to_le_bytes().to_vec();
            b.extend_from_slice(&body);
            let moved = crc_after_change(
                crc32c::crc32c(&a),
                3u64.to_le_bytes(),
                u64::MAX.to_le_bytes(),
                n as u32,
            );
            assert_eq!(moved, crc32c::crc32c(&b), "n = {n}");
        }
    }

    #[test]
    fn a_wrong_crc_stays_wrong() {
        let mut a = 5u64.to_le_bytes().to_vec();
        a.extend_from_slice(b"records");
        let mut b = 9u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"records");
        let bad = crc32c::crc32c(&a) ^ 1;
        let moved = crc_after_change(bad, 5u64.to_le_bytes(), 9u64.to_le_bytes(), 7);
        assert_ne!(moved, crc32c::crc32c(&b));
    }
}
