//! SHA-256 in lower-case hex: the one checksum gan-run writes and checks, for data files
//! (`SHA256SUMS`), config fingerprints and classifier weights. A leaf, so that any module can
//! use it without depending on another's purpose.

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
