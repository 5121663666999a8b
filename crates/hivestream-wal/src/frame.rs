//! Frame codec shared by the WAL segments and the router's manifest log.
//!
//! A frame is `len: u32 LE | crc: u32 LE | payload[len]`, where `crc` is the
//! CRC32C of the four length bytes followed by the payload. Covering the
//! length means a flipped bit in it is caught instead of making the reader
//! skip to a wrong offset. A `len` of zero is never written, so a zero-filled
//! tail (what some file systems leave after a crash) reads as "no frame".

use thiserror::Error;

/// Bytes before the payload: length and checksum.
pub const FRAME_HEADER_LEN: usize = 8;

/// Largest payload a frame may carry. Anything larger read from disk is
/// treated as damage, so a garbage length never causes a huge allocation.
pub const MAX_PAYLOAD_LEN: usize = 64 * 1024 * 1024;

/// Why bytes could not be decoded as a frame.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length field is zero or larger than [`MAX_PAYLOAD_LEN`].
    #[error("frame length {0} is outside 1..={MAX_PAYLOAD_LEN}")]
    BadLength(u32),
    /// The checksum does not match the bytes.
    #[error("frame checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BadChecksum { stored: u32, computed: u32 },
}

/// Appends one frame holding `payload` to `out`.
///
/// # Panics
/// When `payload` is empty or longer than [`MAX_PAYLOAD_LEN`]; callers check
/// sizes before they reach the log.
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    assert!(
        !payload.is_empty() && payload.len() <= MAX_PAYLOAD_LEN,
        "frame payload of {} bytes",
        payload.len()
    );
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Total encoded size of a frame with a payload of `payload_len` bytes.
pub fn frame_len(payload_len: usize) -> usize {
    FRAME_HEADER_LEN + payload_len
}

/// Decodes the frame at the start of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a frame (more bytes are
/// needed), `Ok(Some((payload, consumed)))` for a whole valid frame, and an
/// error when the bytes can never become a valid frame.
pub fn decode_frame(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    if buf.len() < FRAME_HEADER_LEN {
        return Ok(None);
    }
    let len_bytes: [u8; 4] = buf[0..4].try_into().expect("4 bytes");
    let len = u32::from_le_bytes(len_bytes);
    if len == 0 || len as usize > MAX_PAYLOAD_LEN {
        return Err(FrameError::BadLength(len));
    }
    let total = FRAME_HEADER_LEN + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    let stored = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let payload = &buf[FRAME_HEADER_LEN..total];
    let computed = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload);
    if stored != computed {
        return Err(FrameError::BadChecksum { stored, computed });
    }
    Ok(Some((payload, total)))
}

/// Decodes every whole frame at the start of `buf`, stopping at the first
/// incomplete or damaged one. Returns the payloads and the number of bytes
/// they span; the rest of `buf` is a torn or damaged tail.
pub fn decode_prefix(buf: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut payloads = Vec::new();
    let mut pos = 0;
    while let Ok(Some((payload, used))) = decode_frame(&buf[pos..]) {
        payloads.push(payload);
        pos += used;
    }
    (payloads, pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let mut buf = Vec::new();
        encode_frame(b"hello", &mut buf);
        encode_frame(b"world!", &mut buf);
        let (payloads, used) = decode_prefix(&buf);
        assert_eq!(payloads, vec![&b"hello"[..], &b"world!"[..]]);
        assert_eq!(used, buf.len());
    }

    #[test]
    fn zero_tail_is_not_a_frame() {
        assert_eq!(decode_frame(&[0u8; 16]), Err(FrameError::BadLength(0)));
    }

    #[test]
    fn huge_length_is_rejected_without_allocating() {
        let mut buf = u32::MAX.to_le_bytes().to_vec();
        buf.extend_from_slice(&[0; 4]);
        assert_eq!(decode_frame(&buf), Err(FrameError::BadLength(u32::MAX)));
    }

    #[test]
    fn short_input_needs_more() {
        let mut buf = Vec::new();
        encode_frame(b"abcdef", &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(decode_frame(&buf[..cut]), Ok(None), "cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn any_single_bit_flip_is_detected(payload in proptest::collection::vec(any::<u8>(), 1..200), bit in any::<usize>()) {
            let mut buf = Vec::new();
            encode_frame(&payload, &mut buf);
            let bit = bit % (buf.len() * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
            if let Ok(Some((p, _))) = decode_frame(&buf) {
                prop_assert!(false, "flip at bit {bit} decoded as {p:?}");
            }
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_prefix(&buf);
        }
    }
}
