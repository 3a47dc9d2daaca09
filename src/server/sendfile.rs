//! Writing a file region to a non-blocking TCP socket with `sendfile(2)`: the kernel copies
//! from the page cache to the socket buffer, never through user space. Waits for writability
//! through tokio's reactor whenever the socket buffer is full.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::TcpStream;

/// Largest count Linux transfers in one `sendfile` call.
const MAX_CHUNK: u64 = 0x7fff_f000;

/// Sends `len` bytes of `file` from `position` to `stream`. A file shorter than the region
/// (it cannot be, for sealed batch bytes) is an error, since the frame would be torn.
#[allow(unsafe_code, reason = "sendfile(2) has no safe std wrapper")]
pub(crate) async fn send_file(
    stream: &TcpStream,
    file: &File,
    position: u64,
    len: u64,
) -> io::Result<()> {
    let mut offset =
        libc::off_t::try_from(position).map_err(|_| io::Error::other("file offset overflow"))?;
    let mut left = len;
    while left > 0 {
        stream.writable().await?;
        let want = usize::try_from(left.min(MAX_CHUNK)).unwrap_or(MAX_CHUNK as usize);
        let sent = stream.try_io(Interest::WRITABLE, || {
            // SAFETY: both descriptors are open for the duration of the call (borrowed from
            // `stream` and `file`); `offset` is a valid, exclusively borrowed off_t that the
            // kernel advances by the bytes sent.
            let r =
                unsafe { libc::sendfile(stream.as_raw_fd(), file.as_raw_fd(), &mut offset, want) };
            if r < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(r as u64)
            }
        });
        match sent {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file region ended early",
                ))
            }
            Ok(n) => left -= n.min(left),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn sends_exactly_the_region_even_past_the_socket_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.log");
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        send_file(&stream, &file, 12_345, 3_000_000).await.unwrap();
        drop(stream);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), 3_000_000);
        assert!(got == data[12_345..3_012_345]);
    }

    /// Connects a fresh socket pair and runs `send_file` over it; returns its result and every
    /// byte the peer received before the sender's side closed.
    async fn send_over_fresh_socket(
        file: &File,
        position: u64,
        len: u64,
    ) -> (io::Result<()>, Vec<u8>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let res = send_file(&stream, file, position, len).await;
        drop(stream);
        (res, reader.await.unwrap())
    }

    #[tokio::test]
    async fn a_region_past_eof_is_an_error_never_a_short_frame() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg.log");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();

        // The region straddles the end: the 1000 bytes that exist go out, then an error.
        let (res, got) = send_over_fresh_socket(&file, 99_000, 5_000).await;
        let err = res.expect_err("a region running past EOF must fail");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        assert!(got == data[99_000..], "got {} bytes", got.len());

        // The region starts at or past the end: nothing goes out.
        for start in [100_000, 200_000] {
            let (res, got) = send_over_fresh_socket(&file, start, 10).await;
            let err = res.expect_err("a region wholly past EOF must fail");
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
            assert!(got.is_empty(), "got {} bytes", got.len());
        }

        // A segment truncated under an open reader (as a cleaner's swap or recovery could do):
        // a region that was valid when the reader looked is now past EOF.
        let (res, _) = send_over_fresh_socket(&file, 50_000, 40_000).await;
        res.expect("a region inside the file is sent whole");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(60_000)
            .unwrap();
        let (res, got) = send_over_fresh_socket(&file, 50_000, 40_000).await;
        let err = res.expect_err("a region truncated under the reader must fail");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        assert!(got == data[50_000..60_000], "got {} bytes", got.len());
    }
}
