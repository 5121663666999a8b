//! The frame decoder on arbitrary bytes: it must never panic, and the
//! frames it accepts must re-encode to exactly the bytes they came from.
#![no_main]

use hivestream_wal::frame::{decode_frame, decode_prefix, encode_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (payloads, used) = decode_prefix(data);
    let mut again = Vec::new();
    for p in &payloads {
        encode_frame(p, &mut again);
    }
    assert_eq!(&again[..], &data[..used], "decoded frames re-encode to their bytes");
    // What follows the valid prefix is never a whole valid frame.
    assert!(!matches!(decode_frame(&data[used..]), Ok(Some(_))));
});
