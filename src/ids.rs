//! Identifiers and timestamps shared by every part.
//!
//! Event ids are `evt_` followed by a ULID-style 26-character Crockford
//! base32 string: 48 bits of milliseconds, then 80 random bits, so that ids
//! sort by creation time.

use chrono::{SecondsFormat, Utc};
use rand::RngCore;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new time-sortable unique id with the given prefix, e.g. `evt_01J…`.
pub fn sortable(prefix: &str) -> String {
    let millis = Utc::now().timestamp_millis().max(0) as u128;
    let mut random = [0u8; 10];
    rand::rng().fill_bytes(&mut random);
    let mut value: u128 = millis << 80;
    for (i, byte) in random.iter().enumerate() {
        value |= (*byte as u128) << (8 * (9 - i));
    }
    let mut out = String::with_capacity(prefix.len() + 27);
    out.push_str(prefix);
    out.push('_');
    for i in (0..26).rev() {
        out.push(CROCKFORD[((value >> (5 * i)) & 31) as usize] as char);
    }
    out
}

/// Now, as the RFC 3339 UTC text with microseconds every timestamp uses.
pub fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    #[test]
    fn sortable_ids_have_the_documented_shape_and_order() {
        let a = super::sortable("evt");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::sortable("evt");
        assert_eq!(a.len(), 30);
        assert!(a.starts_with("evt_"));
        assert!(a < b);
    }
}
