//! A TCP proxy that slows a connection down: every chunk it forwards waits
//! as long as the configured bandwidth says. Transparent (the client's Host
//! header and SigV4 signature pass unchanged), so it can sit between the
//! server and SeaweedFS to simulate a slow or congested S3.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running proxy; it lives as long as the test process.
pub struct SlowProxy {
    pub addr: String,
    /// Bytes per second in each direction; 0 means unthrottled.
    bytes_per_sec: Arc<AtomicU64>,
}

impl SlowProxy {
    pub fn start(upstream: &str, bytes_per_sec: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let rate = Arc::new(AtomicU64::new(bytes_per_sec));
        let (up, r) = (upstream.to_string(), Arc::clone(&rate));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&up) else {
                    continue;
                };
                pipe(&client, &server, &r);
                pipe(&server, &client, &r);
            }
        });
        Self {
            addr,
            bytes_per_sec: rate,
        }
    }

    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.bytes_per_sec.store(bytes_per_sec, Ordering::Relaxed);
    }
}

fn pipe(from: &TcpStream, to: &TcpStream, rate: &Arc<AtomicU64>) {
    let (mut from, mut to, rate) = (
        from.try_clone().unwrap(),
        to.try_clone().unwrap(),
        Arc::clone(rate),
    );
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let r = rate.load(Ordering::Relaxed);
            if r > 0 {
                std::thread::sleep(Duration::from_secs_f64(n as f64 / r as f64));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
