//! Record-section codecs (gzip, snappy raw and xerial-framed, lz4 frame, zstd). Decompression is
//! always bounded by a limit so an untrusted length can never size an allocation.

use std::io::{Read, Write};

use super::batch::Compression;
use super::RecordError;

/// Default cap on decompressed output: 64 MiB.
pub const DEFAULT_DECOMPRESS_LIMIT: usize = 64 * 1024 * 1024;

const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;

fn corrupt(codec: Compression, e: impl std::fmt::Display) -> RecordError {
    RecordError::CorruptMessage(format!("{codec:?} decompression failed: {e}"))
}

fn too_big(limit: usize) -> RecordError {
    RecordError::CorruptMessage(format!("decompressed size exceeds limit of {limit} bytes"))
}

/// Reads all of `r` into a vector, failing once more than `limit` bytes come out.
fn read_bounded(codec: Compression, r: impl Read, limit: usize) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    r.take(cap)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > limit {
        return Err(too_big(limit));
    }
    Ok(out)
}

/// Decompresses `input` with [`DEFAULT_DECOMPRESS_LIMIT`]. The broker always passes its own
/// limit to [`decompress_bounded`]; this is the tests' shorthand.
#[cfg(test)]
pub fn decompress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, RecordError> {
    decompress_bounded(codec, input, DEFAULT_DECOMPRESS_LIMIT)
}

/// Decompresses `input`, failing with `CorruptMessage` on bad data or when the output would
/// exceed `limit` bytes. Snappy accepts both raw blocks and xerial framing. Pure; thread-safe.
pub fn decompress_bounded(
    codec: Compression,
    input: &[u8],
    limit: usize,
) -> Result<Vec<u8>, RecordError> {
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

/// Appends one raw snappy block to `out`, checking the claimed length against the budget first.
fn snappy_raw_into(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), RecordError> {
    let claimed = snap::raw::decompress_len(block).map_err(|e| corrupt(Compression::Snappy, e))?;
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
        let chunk = rest
            .get(4..4 + len)
            .ok_or_else(|| corrupt(Compression::Snappy, "xerial chunk past end of input"))?;
        snappy_raw_into(chunk, limit, &mut out)?;
        rest = &rest[4 + len..];
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
