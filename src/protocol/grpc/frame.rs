//! gRPC message framing: the `Length-Prefixed-Message` of the gRPC over
//! HTTP/2 protocol document ("Requests" / "Responses"): a 1-byte
//! `Compressed-Flag`, a 4-byte big-endian `Message-Length`, then the
//! message.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// The length of the frame header: flag and length.
pub(crate) const HEADER_LEN: usize = 5;

/// Why a body is not exactly one uncompressed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// No message at all (an empty body: a trailers-only answer).
    Empty,
    /// The body ends inside the header or the message.
    Truncated,
    /// The `Compressed-Flag` is set: the message is compressed with the
    /// `grpc-encoding` of the answer, which the layer does not inflate.
    Compressed,
    /// Bytes follow the first message (a second message: not a unary answer).
    Trailing,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameError::Empty => "no gRPC message in the body",
            FrameError::Truncated => "the gRPC message frame is truncated",
            FrameError::Compressed => "the gRPC message is compressed",
            FrameError::Trailing => "more than one gRPC message in the body",
        })
    }
}

/// Frames `message` as one uncompressed Length-Prefixed-Message.
#[cfg(test)]
///
/// Messages longer than `u32::MAX` bytes cannot be framed; the length is
/// then saturated (and the receiver will see a truncated frame), which no
/// message the layer builds comes near.
pub(crate) fn encode(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + message.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    out.put_slice(message);
    out.freeze()
}

/// Frames a prost message.
pub(crate) fn encode_message<M: prost::Message>(message: &M) -> Bytes {
    let len = message.encoded_len();
    let mut out = BytesMut::with_capacity(HEADER_LEN + len);
    out.put_u8(0);
    out.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // Cannot fail: the buffer has room for `len` bytes (BytesMut grows).
    if message.encode(&mut out).is_err() {
        out.truncate(HEADER_LEN);
    }
    out.freeze()
}

/// The message of a body that is exactly one uncompressed
/// Length-Prefixed-Message.
///
/// # Errors
///
/// [`FrameError`]: an empty body, a truncated frame, a set compressed flag
/// (checked before the length, so a compressed frame is reported as such
/// even when truncated), or bytes after the message.
pub(crate) fn decode_single(body: &[u8]) -> Result<&[u8], FrameError> {
    let Some((&flag, rest)) = body.split_first() else {
        return Err(FrameError::Empty);
    };
    if flag != 0 {
        return Err(FrameError::Compressed);
    }
    let Some((len, message)) = rest.split_first_chunk::<4>() else {
        return Err(FrameError::Truncated);
    };
    let len = usize::try_from(u32::from_be_bytes(*len)).unwrap_or(usize::MAX);
    match message.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(FrameError::Truncated),
        std::cmp::Ordering::Greater => Err(FrameError::Trailing),
        std::cmp::Ordering::Equal => Ok(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_one_message() {
        let framed = encode(b"abc");
        assert_eq!(&framed[..], [0, 0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(decode_single(&framed), Ok(&b"abc"[..]));
        assert_eq!(decode_single(&encode(b"")), Ok(&b""[..]));
    }

    #[test]
    fn frames_prost_messages_like_raw_bytes() {
        let msg = super::super::messages::GetOperationRequest { name: "n".into() };
        assert_eq!(
            encode_message(&msg),
            encode(&prost::Message::encode_to_vec(&msg))
        );
    }

    #[test]
    fn rejects_everything_but_one_uncompressed_message() {
        assert_eq!(decode_single(b""), Err(FrameError::Empty));
        assert_eq!(decode_single(&[0, 0, 0]), Err(FrameError::Truncated));
        assert_eq!(
            decode_single(&[0, 0, 0, 0, 4, 1, 2]),
            Err(FrameError::Truncated)
        );
        assert_eq!(
            decode_single(&[1, 0, 0, 0, 1, 9]),
            Err(FrameError::Compressed)
        );
        assert_eq!(decode_single(&[1, 0]), Err(FrameError::Compressed));
        let mut two = encode(b"a").to_vec();
        two.extend_from_slice(&encode(b"b"));
        assert_eq!(decode_single(&two), Err(FrameError::Trailing));
        // A length near u32::MAX with a short body is truncated, not a panic.
        assert_eq!(
            decode_single(&[0, 255, 255, 255, 255, 1]),
            Err(FrameError::Truncated)
        );
    }
}
