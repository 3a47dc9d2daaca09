//! Writers for the variable-length integers of Kafka's record format (zigzag varints, as in
//! protobuf) and the length-prefixed nullable byte strings built on them.

/// Appends `v` as a zigzag varlong.
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Appends a varlong length then the bytes, or length -1 for null.
pub fn put_nullable_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varlong(out, -1),
        Some(b) => {
            put_varlong(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_encoding_matches_kafka() {
        let enc = |v| {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            out
        };
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(-1), [0x01]);
        assert_eq!(enc(1), [0x02]);
        assert_eq!(enc(63), [0x7e]);
        assert_eq!(enc(64), [0x80, 0x01]);
        let mut out = Vec::new();
        put_nullable_bytes(&mut out, None);
        put_nullable_bytes(&mut out, Some(b"k1"));
        assert_eq!(out, [0x01, 0x04, b'k', b'1']);
    }
}
