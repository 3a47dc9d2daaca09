//! Record-section codecs (gzip, snappy raw and xerial-framed, lz4 frame, zstd). Decompression is
//! always bounded by a limit so an untrusted length can never size an allocation.

use std::io::{Read, Write};

use super::batch::Compression;
use super::RecordError;

/// Cap on decompressed output where no topic setting gives one (stored batches read back whose
/// topic has since lowered `max.message.bytes`; tests): 64 MiB.
pub const DEFAULT_DECOMPRESS_LIMIT: usize = 64 * 1024 * 1024;

/// How many times `max.message.bytes` a batch's records may decompress to. Kafka sets no such
/// cap, but a few dozen compressed bytes can claim gigabytes; 64 keeps legitimate batches of
/// very repetitive data (the Java producer sizes batches by an estimated compression ratio, so
/// a full 1 MiB batch can hold tens of MiB of records) while bounding what one batch can make
/// the broker hold. A batch past it gets MESSAGE_TOO_LARGE, which makes the Java producer
/// split the batch and retry.
pub const DECOMPRESS_RATIO: usize = 64;

/// Ceiling on the cap whatever `max.message.bytes` says: 1 GiB.
const MAX_DECOMPRESS_LIMIT: usize = 1 << 30;

/// The most bytes one batch of a topic with this `max.message.bytes` may decompress to.
pub fn decompress_limit(max_message_bytes: usize) -> usize {
    max_message_bytes
        .saturating_mul(DECOMPRESS_RATIO)
        .min(MAX_DECOMPRESS_LIMIT)
}

/// The most a raw snappy block's literal and copy elements can expand: a 3-byte copy element
/// writes at most 64 bytes, so no valid block decompresses to more than 22 times its size.
const SNAPPY_MAX_RATIO: usize = 22;

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;

fn corrupt(codec: Compression, e: impl std::fmt::Display) -> RecordError {
    RecordError::CorruptMessage(format!("{codec:?} decompression failed: {e}"))
}

fn too_big(limit: usize) -> RecordError {
    RecordError::DecompressedTooLarge { limit }
}

/// Size of the pieces a streaming decoder's output is read in: the output vector grows with
/// what actually comes out, never with what a header claims.
const READ_CHUNK: usize = 64 * 1024;

#[cfg(test)]
thread_local! {
    /// Decompressions done by this thread, so tests can check a batch is decoded once.
    pub(crate) static DECOMPRESSIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Reads all of `r` into a vector, failing as soon as more than `limit` bytes come out.
fn read_bounded(
    codec: Compression,
    mut r: impl Read,
    limit: usize,
) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    let mut chunk = [0u8; READ_CHUNK];
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(corrupt(codec, e)),
        };
        if n > limit.saturating_sub(out.len()) {
            return Err(too_big(limit));
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

/// Decompresses `input` with [`DEFAULT_DECOMPRESS_LIMIT`]. The broker always passes its own
/// limit to [`decompress_bounded`]; this is the tests' shorthand.
#[cfg(test)]
pub fn decompress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, RecordError> {
    decompress_bounded(codec, input, DEFAULT_DECOMPRESS_LIMIT)
}

/// Decompresses `input` with a streaming decoder, failing with `CorruptMessage` on bad data
/// and with `DecompressedTooLarge` once the output passes `limit` bytes: memory follows the
/// bytes that really come out, up to `limit`. Snappy accepts both raw blocks and xerial
/// framing. Pure; thread-safe.
pub fn decompress_bounded(
    codec: Compression,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, RecordError> {
    #[cfg(test)]
    DECOMPRESSIONS.with(|n| n.set(n.get() + 1));
    match codec {
        Compression::None => {
            if input.len() > limit {
                return Err(too_big(limit));
            }
            Ok(input.to_vec())
        }
        Compression::Gzip => read_bounded(codec, flate2::read::MultiGzDecoder::new(input), limit),
        Compression::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(input), limit),
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::new(input).map_err(|e| corrupt(codec, e))?;
            read_bounded(codec, dec, limit)
        }
        Compression::Snappy => {
            if input.len() >= XERIAL_HEADER_LEN && input[..8] == XERIAL_MAGIC {
                snappy_xerial(&input[XERIAL_HEADER_LEN..], limit)
            } else {
                let mut out = Vec::new();
                snappy_raw_into(input, limit, &mut out)?;
                Ok(out)
            }
        }
    }
}

/// Appends one raw snappy block to `out`. The block format needs its whole output buffer at
/// once, so the claimed length is checked first against the budget and against what the
/// block's own size could possibly expand to: the allocation never exceeds either.
fn snappy_raw_into(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let claimed = snap::raw::decompress_len(block).map_err(|e| corrupt(Compression::Snappy, e))?;
    if claimed > block.len().saturating_mul(SNAPPY_MAX_RATIO) {
        return Err(corrupt(
            Compression::Snappy,
            format!(
                "a block of {} bytes cannot hold the {claimed} bytes it claims",
                block.len()
            ),
        ));
    }
    if claimed > limit.saturating_sub(out.len()) {
        return Err(too_big(limit));
    }
    let start = out.len();
    out.resize(start + claimed, 0);
    let n = snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| corrupt(Compression::Snappy, e))?;
    out.truncate(start + n);
    Ok(())
}

fn snappy_xerial(mut rest: &[u8], limit: usize) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(corrupt(
                Compression::Snappy,
                "truncated xerial chunk length",
            ));
        }
        let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let len = usize::try_from(len)
            .map_err(|_| corrupt(Compression::Snappy, "negative xerial chunk length"))?;
        let end = len
            .checked_add(4)
            .ok_or_else(|| corrupt(Compression::Snappy, "xerial chunk length overflows"))?;
        let chunk = rest
            .get(4..end)
            .ok_or_else(|| corrupt(Compression::Snappy, "xerial chunk past end of input"))?;
        snappy_raw_into(chunk, limit, &mut out)?;
        rest = &rest[end..];
    }
    Ok(out)
}

fn io_err(codec: Compression, e: std::io::Error) -> RecordError {
    RecordError::InvalidRecord(format!("{codec:?} compression failed: {e}"))
}

/// Compresses `input` at the codec's default level. Snappy output uses xerial framing, as the
/// Java client writes it. Pure; thread-safe.
pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, RecordError> {
    compress_at(codec, input, None)
}

/// [`compress`] at `level` (`compression.gzip.level`: -1 or 1–9; `compression.zstd.level`);
/// `None` or -1 is the codec's default. Snappy has no levels, and lz4 is written by `lz4_flex`,
/// which has only its fast mode, so `compression.lz4.level` cannot be honoured.
pub fn compress_at(
    codec: Compression,
    input: &[u8],
    level: Option<i32>,
) -> Result<Vec<u8>, RecordError> {
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => {
            let level = match level.and_then(|l| u32::try_from(l).ok()) {
                Some(l @ 1..=9) => flate2::Compression::new(l),
                _ => flate2::Compression::default(),
            };
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), level);
            enc.write_all(input).map_err(|e| io_err(codec, e))?;
            enc.finish().map_err(|e| io_err(codec, e))
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(input.len() / 2 + 32);
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for chunk in input.chunks(32 * 1024) {
                let block = enc
                    .compress_vec(chunk)
                    .map_err(|e| RecordError::InvalidRecord(format!("snappy: {e}")))?;
                let len = i32::try_from(block.len())
                    .map_err(|_| RecordError::InvalidRecord("snappy block too large".into()))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(&block);
            }
            Ok(out)
        }
        Compression::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
            enc.write_all(input).map_err(|e| io_err(codec, e))?;
            enc.finish()
                .map_err(|e| RecordError::InvalidRecord(format!("lz4 compression failed: {e}")))
        }
        Compression::Zstd => {
            zstd::stream::encode_all(input, level.unwrap_or(3)).map_err(|e| io_err(codec, e))
        }
    }
}

/// Compresses `input` as one raw snappy block (no xerial framing), as librdkafka writes it: the
/// tests' way to produce what the broker must read (the broker itself only writes xerial framing).
#[cfg(test)]
pub fn compress_snappy_raw(input: &[u8]) -> Result<Vec<u8>, RecordError> {
    snap::raw::Encoder::new()
        .compress_vec(input)
        .map_err(|e| RecordError::InvalidRecord(format!("snappy: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect()
    }

    #[test]
    fn round_trip_every_codec() {
        let data = sample();
        for c in ALL {
            let z = compress(c, &data).unwrap();
            assert_eq!(decompress(c, &z).unwrap(), data, "{c:?}");
        }
    }

    #[test]
    fn raw_snappy_decodes() {
        let data = sample();
        let z = compress_snappy_raw(&data).unwrap();
        assert_eq!(decompress(Compression::Snappy, &z).unwrap(), data);
    }

    #[test]
    fn output_is_bounded() {
        let data = vec![0u8; 1 << 20];
        for c in ALL {
            let z = compress(c, &data).unwrap();
            assert!(decompress_bounded(c, &z, 1000).is_err(), "{c:?}");
            assert_eq!(decompress_bounded(c, &z, 1 << 20).unwrap().len(), 1 << 20);
        }
        // A raw snappy block claiming a huge length must be refused before allocating.
        let huge = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert!(decompress_bounded(Compression::Snappy, &huge, 1000).is_err());
    }

    /// A bomb: 64 MiB of zeros compress to a few KiB (snappy: a few MiB). Decoding it under a
    /// 1 MiB cap fails as too large, not as corrupt (Produce answers MESSAGE_TOO_LARGE); a raw
    /// snappy block claiming far more than its bytes can hold is corrupt even under no cap,
    /// before anything is allocated for it.
    #[test]
    fn a_bomb_is_refused_as_too_large_at_the_cap() {
        let zeros = vec![0u8; 64 << 20];
        for c in ALL.into_iter().skip(1) {
            let bomb = compress(c, &zeros).unwrap();
            assert!(bomb.len() < zeros.len() / 10, "{c:?}: {}", bomb.len());
            let err = decompress_bounded(c, &bomb, 1 << 20).unwrap_err();
            assert_eq!(
                err,
                RecordError::DecompressedTooLarge { limit: 1 << 20 },
                "{c:?}"
            );
        }
        // 7 bytes claiming 2^31 bytes of output: no valid block expands 300 million times.
        let liar = [0x80, 0x80, 0x80, 0x80, 0x08, 0x00, 0x00];
        let err = decompress_bounded(Compression::Snappy, &liar, usize::MAX).unwrap_err();
        assert!(matches!(err, RecordError::CorruptMessage(_)), "{err:?}");
    }

    #[test]
    fn the_cap_is_a_bounded_multiple_of_max_message_bytes() {
        assert_eq!(decompress_limit(1_048_588), 1_048_588 * DECOMPRESS_RATIO);
        assert_eq!(decompress_limit(usize::MAX), MAX_DECOMPRESS_LIMIT);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let garbage: Vec<u8> = (0..300u32).map(|i| (i * 37 % 256) as u8).collect();
        for c in ALL.into_iter().skip(1) {
            assert!(decompress(c, &garbage).is_err(), "{c:?}");
        }
        let mut xerial = XERIAL_MAGIC.to_vec();
        xerial.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff]);
        assert!(decompress(Compression::Snappy, &xerial).is_err());
    }
}
