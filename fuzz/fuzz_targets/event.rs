//! The event decoder and validator on arbitrary bytes: it must never
//! panic, and whatever it accepts must become one valid JSON line with the
//! contract's nine fields in order and `properties` unchanged in meaning.
#![no_main]

use hivestream_core::collect::event::parse_event;
use libfuzzer_sys::fuzz_target;

const FIELDS: [&str; 9] = [
    "event_id", "time", "name", "user_id", "session_id", "view_id", "segments", "cohorts",
    "properties",
];

fuzz_target!(|data: &[u8]| {
    let Ok(ev) = parse_event(data) else { return };
    let id = uuid::Uuid::nil();
    let mut line = Vec::new();
    let at = ev.write_line(&id, 1_764_000_000_000, &id, &mut line);
    assert_eq!(&line[at..at + 36], id.hyphenated().to_string().as_bytes());
    assert!(!line.contains(&b'\n'), "a stored line must be one line");
    let out: serde_json::Value = serde_json::from_slice(&line).expect("the line is JSON");
    let keys: Vec<&str> = out.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = FIELDS.to_vec();
    sorted.sort_unstable();
    assert_eq!(keys, sorted, "exactly the contract's fields");
    let input: serde_json::Value = serde_json::from_slice(data).expect("accepted input is JSON");
    if let Some(p) = input.get("properties") {
        assert_eq!(&out["properties"], p, "properties kept");
    }
    let text = std::str::from_utf8(&line).unwrap();
    let pos: Vec<usize> = FIELDS.iter().map(|f| text.find(&format!("\"{f}\":")).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "field order");
});
