//! Reading size-prefixed Kafka frames off a socket, with the size capped before any allocation.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read. Every variant closes the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge { size: i64, max: usize },
    #[error("frame size {0} is negative")]
    Negative(i32),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
}

/// Memory is grown in steps of at most this much as bytes actually arrive, so a client that
/// announces a 100 MiB frame and then stalls holds 64 KiB, not 100 MiB.
const READ_STEP: usize = 64 * 1024;

/// Reads one frame body (without its 4-byte size). `Ok(None)` is a clean end of stream between
/// frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut size_buf = [0u8; 4];
    match reader.read_exact(&mut size_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size_buf);
    if size < 0 {
        return Err(FrameError::Negative(size));
    }
    let size = size as usize;
    if size > max_size {
        return Err(FrameError::TooLarge {
            size: size as i64,
            max: max_size,
        });
    }
    let mut body = BytesMut::with_capacity(size.min(READ_STEP));
    while body.len() < size {
        let want = (size - body.len()).min(READ_STEP);
        body.reserve(want);
        let n = reader.read_buf(&mut (&mut body).limit(want)).await?;
        if n == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(Some(body.freeze()))
}
