//! A response frame that need not sit in memory: a sequence of byte chunks and file regions
//! (record batches still in their segment files). The connection writes the bytes and hands
//! the file regions to `sendfile(2)`, so Fetch data goes from the page cache to the socket
//! without being copied through user space. Plain data; `Send`.

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;

/// One piece of a response frame.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Bytes already in memory (framing, encoded fields).
    Bytes(Bytes),
    /// `len` bytes of `file` from `position`.
    File {
        /// The (segment) file.
        file: Arc<File>,
        /// Start of the region.
        position: u64,
        /// Length of the region.
        len: u64,
    },
}

/// A whole response frame, size prefix included, as chunks. See the module docs.
#[derive(Debug, Clone, Default)]
pub struct ResponseBody {
    chunks: Vec<Chunk>,
    len: u64,
}

impl From<Bytes> for ResponseBody {
    fn from(bytes: Bytes) -> ResponseBody {
        let mut b = ResponseBody::new();
        b.push_bytes(bytes);
        b
    }
}

impl ResponseBody {
    /// An empty body.
    pub fn new() -> ResponseBody {
        ResponseBody::default()
    }

    /// Appends in-memory bytes.
    pub fn push_bytes(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.len += bytes.len() as u64;
        self.chunks.push(Chunk::Bytes(bytes));
    }

    /// Appends a file region.
    pub fn push_file(&mut self, file: Arc<File>, position: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.len += len;
        self.chunks.push(Chunk::File {
            file,
            position,
            len,
        });
    }

    /// Total bytes of the frame.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if the frame has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }
}
