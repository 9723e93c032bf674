//! The retry schedule: the delays between attempts, with jitter.

use std::time::Duration;

use rand::Rng;

use crate::app::parse_duration;

/// Delays after the first (immediate) attempt: 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 14 h, 20 h, 24 h — about 75 hours in all.
pub const DEFAULT: &str = "5s,5m,30m,2h,5h,10h,14h,20h,24h";

#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl RetrySchedule {
    /// Parse `5s,5m,30m,…`.
    pub fn parse(text: &str) -> Result<RetrySchedule, String> {
        let delays = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(parse_duration)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RetrySchedule { delays })
    }

    /// How many attempts in all (the first, then one per delay).
    pub fn attempts(&self) -> usize {
        self.delays.len() + 1
    }

    /// The delay before attempt `made + 1`, after `made` failed attempts,
    /// with ±20 % jitter; `None` when the schedule is used up.
    pub fn next_delay(&self, made: usize) -> Option<Duration> {
        let base = *self.delays.get(made.checked_sub(1)?)?;
        let factor = rand::rng().random_range(0.8..=1.2);
        Some(base.mul_f64(factor))
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule::parse(DEFAULT).expect("the default schedule parses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_spans_about_75_hours_with_jitter() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.attempts(), 10);
        let total: Duration = (1..10).map(|n| schedule.next_delay(n).unwrap()).sum();
        assert!(total > Duration::from_secs(60 * 3600) && total < Duration::from_secs(90 * 3600));
        assert!(schedule.next_delay(10).is_none());
        let first = schedule.next_delay(1).unwrap();
        assert!(first >= Duration::from_secs(4) && first <= Duration::from_secs(6));
        assert!(RetrySchedule::parse("1s,x").is_err());
    }
}
