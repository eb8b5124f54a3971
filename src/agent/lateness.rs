//! How late probes start: the instant a probe starts minus its slot on the
//! schedule. A busy loop, a full in-flight cap or a starved CPU shows here
//! first, as the Prometheus histogram `tether_check_start_lateness_seconds`.

use std::cell::Cell;
use std::time::Duration;

/// Upper bounds of the histogram's buckets, in seconds (`+Inf` follows).
pub const BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Counts per bucket (not cumulative; the last is `+Inf`) and the sum.
#[derive(Default)]
pub struct Lateness {
    counts: [Cell<u64>; BUCKETS.len() + 1],
    sum_micros: Cell<u64>,
}

/// A copy for `/metrics`: cumulative counts, as the exposition format wants.
#[derive(Clone, Debug, PartialEq)]
pub struct LatenessView {
    pub cumulative: [u64; BUCKETS.len() + 1],
    pub sum_seconds: f64,
}

impl Lateness {
    pub fn observe(&self, late: Duration) {
        let s = late.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].set(self.counts[i].get() + 1);
        let micros = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros
            .set(self.sum_micros.get().saturating_add(micros));
    }

    pub fn view(&self) -> LatenessView {
        let mut cumulative = [0; BUCKETS.len() + 1];
        let mut total = 0;
        for (c, n) in cumulative.iter_mut().zip(&self.counts) {
            total += n.get();
            *c = total;
        }
        LatenessView {
            cumulative,
            sum_seconds: self.sum_micros.get() as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_bounds_and_cumulative() {
        let l = Lateness::default();
        l.observe(Duration::from_micros(300)); // <= 1 ms
        l.observe(Duration::from_millis(1)); // exactly on a bound: that bucket
        l.observe(Duration::from_millis(80)); // <= 100 ms
        l.observe(Duration::from_secs(4)); // +Inf
        let v = l.view();
        assert_eq!(v.cumulative[0], 2);
        assert_eq!(v.cumulative[5], 2); // <= 50 ms
        assert_eq!(v.cumulative[6], 3); // <= 100 ms
        assert_eq!(v.cumulative[10], 3); // <= 2.5 s
        assert_eq!(v.cumulative[11], 4);
        assert!((v.sum_seconds - 4.0813).abs() < 1e-9, "{}", v.sum_seconds);
    }
}
