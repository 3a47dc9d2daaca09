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

/// The first allocation for a frame body. Beyond it the buffer doubles as bytes actually
/// arrive, so a client that announces a 100 MiB frame and then stalls holds at most twice what it
/// sent, while a legitimate large frame costs O(log n) reallocations, not one per 64 KiB.
const FIRST_STEP: usize = 256 * 1024;

/// Reads a frame's 4-byte size and checks it against `max_size`, so the caller can reserve
/// memory for the body before reading it. `Ok(None)` is a clean end of stream.
pub async fn read_frame_size<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: usize,
) -> Result<Option<usize>, FrameError> {
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
    Ok(Some(size))
}

/// Reads a frame body of `size` bytes (already checked against the maximum).
pub async fn read_frame_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    size: usize,
) -> Result<Bytes, FrameError> {
    let mut body = BytesMut::with_capacity(size.min(FIRST_STEP));
    while body.len() < size {
        let missing = size - body.len();
        if body.capacity() == body.len() {
            // Double what has arrived so far, never past the announced size.
            body.reserve(missing.min(body.len().max(FIRST_STEP)));
        }
        // Reads as large as the free capacity let tokio's BufReader skip its own buffer
        // (one copy, socket to frame) once its buffered bytes are drained.
        let room = (body.capacity() - body.len()).min(missing);
        let n = reader.read_buf(&mut (&mut body).limit(room)).await?;
        if n == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(body.freeze())
}
