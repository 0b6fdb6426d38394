//! The one clock: CLOCK_MONOTONIC, shared by every process and namespace on the machine, so
//! events stamped by the runner, the client and the server line up.

/// Nanoseconds on the monotonic clock.
pub fn now_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// Milliseconds from `origin_ns` to `t_ns`, rounded to the microsecond.
pub fn ms_since(origin_ns: u64, t_ns: u64) -> f64 {
    let micros = (t_ns as i128 - origin_ns as i128) / 1000;
    micros as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_to_microseconds_and_allows_negative() {
        assert_eq!(ms_since(1_000_000, 3_500_999), 2.5);
        assert_eq!(ms_since(2_000_000, 1_000_000), -1.0);
        let a = now_ns();
        assert!(now_ns() >= a);
    }
}
