//! Per-key request rate limits: a token bucket per API key. A key that runs
//! dry gets 429 with `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    /// Requests per second per key; `None` disables the limit.
    rate: Option<f64>,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `rate` requests per second per key, with bursts of up to twice that.
    pub fn new(rate: Option<u32>) -> RateLimiter {
        let rate = rate.filter(|r| *r > 0).map(f64::from);
        RateLimiter {
            rate,
            burst: rate.map(|r| (r * 2.0).max(1.0)).unwrap_or(0.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one request from `key`'s bucket; `Err(wait)` when it is empty.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        let Some(rate) = self.rate else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limit lock");
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, last)| now.duration_since(*last) < Duration::from_secs(60));
        }
        let (tokens, last) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_runs_dry_and_refills() {
        let limiter = RateLimiter::new(Some(5));
        let granted = (0..20).filter(|_| limiter.take("k").is_ok()).count();
        assert_eq!(granted, 10, "the burst is twice the rate");
        let wait = limiter.take("k").unwrap_err();
        assert!(wait <= Duration::from_millis(200));
        assert!(limiter.take("other").is_ok(), "buckets are per key");
        assert!(RateLimiter::new(None).take("k").is_ok());
    }
}
