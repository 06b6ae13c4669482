//! Where one message body stands while it streams: how many bytes of what arrives belong to
//! it (a length counting down, the chunked validator, or everything until close) and whether
//! it is complete. The relays ask it before they forward anything.

use crate::chunked::{ChunkError, Chunked};
use crate::request::RequestBody;
use crate::response::ResponseBody;

#[derive(Debug, Clone)]
pub(crate) enum BodyCursor {
    Length(u64),
    Chunked(Chunked),
    UntilClose { seen: u64 },
    Done,
}

impl BodyCursor {
    pub fn request(b: RequestBody) -> Self {
        match b {
            RequestBody::None | RequestBody::Length(0) => BodyCursor::Done,
            RequestBody::Length(n) => BodyCursor::Length(n),
            RequestBody::Chunked => BodyCursor::Chunked(Chunked::default()),
        }
    }

    pub fn response(b: ResponseBody) -> Self {
        match b {
            ResponseBody::None | ResponseBody::Length(0) => BodyCursor::Done,
            ResponseBody::Length(n) => BodyCursor::Length(n),
            ResponseBody::Chunked => BodyCursor::Chunked(Chunked::default()),
            ResponseBody::UntilClose => BodyCursor::UntilClose { seen: 0 },
        }
    }

    pub fn is_done(&self) -> bool {
        match self {
            BodyCursor::Done => true,
            BodyCursor::Chunked(c) => c.is_done(),
            _ => false,
        }
    }

    /// The bytes left when the length is known.
    pub fn remaining(&self) -> Option<u64> {
        match self {
            BodyCursor::Length(n) => Some(*n),
            BodyCursor::Done => Some(0),
            _ => None,
        }
    }

    /// Payload bytes so far where that is tracked (chunked: data only; until-close: all).
    pub fn decoded(&self) -> u64 {
        match self {
            BodyCursor::Chunked(c) => c.decoded(),
            BodyCursor::UntilClose { seen } => *seen,
            _ => 0,
        }
    }

    /// How many of `input`'s leading bytes belong to the body.
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, ChunkError> {
        match self {
            BodyCursor::Length(n) => {
                let take = (input.len() as u64).min(*n);
                *n -= take;
                if *n == 0 {
                    *self = BodyCursor::Done;
                }
                Ok(take as usize)
            }
            BodyCursor::Chunked(c) => c.feed(input),
            BodyCursor::UntilClose { seen } => {
                *seen += input.len() as u64;
                Ok(input.len())
            }
            BodyCursor::Done => Ok(0),
        }
    }

    /// `n` bytes of a known length moved outside `feed` (by splice).
    pub fn advance(&mut self, n: u64) {
        if let BodyCursor::Length(left) = self {
            *left -= n.min(*left);
            if *left == 0 {
                *self = BodyCursor::Done;
            }
        }
    }

    /// The source closed: complete only for an until-close body.
    pub fn close(&mut self) -> bool {
        match self {
            BodyCursor::UntilClose { .. } | BodyCursor::Done => {
                *self = BodyCursor::Done;
                true
            }
            _ => false,
        }
    }
}
