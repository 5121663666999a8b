//! Collect: the HTTP API. Requests are bounded and decoded ([`server`]),
//! events validated and encoded into their final JSON lines ([`event`]),
//! and every failure answered with the contract's error envelope
//! ([`api_error`]).

pub mod access;
pub mod api_error;
pub mod backend;
pub mod encode;
pub mod event;
pub mod json_scan;
pub mod listener;
pub mod ratelimit;
pub mod server;
