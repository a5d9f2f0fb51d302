//! Zipf sampling over a population that grows while the simulation runs.
//!
//! Rank `k` (1-based) has weight `k^-s`. The cumulative weights are kept in a table that is extended as the
//! population grows, and a sample is a binary search for a uniform draw in it: exact, O(log n), and
//! deterministic (the same sums are computed in the same order every time).

use rand::Rng;

#[derive(Debug, Clone)]
pub(crate) struct Zipf {
    exponent: f64,
    /// `cumulative[i]` = sum of `k^-s` for `k` in `1..=i+1`.
    cumulative: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(exponent: f64) -> Self {
        Zipf {
            exponent,
            cumulative: Vec::new(),
        }
    }

    /// A 0-based rank in `0..n`, rank 0 being the most likely. `n` must be at least 1 (0 is treated as 1).
    pub(crate) fn sample<R: Rng + ?Sized>(&mut self, rng: &mut R, n: usize) -> usize {
        let n = n.max(1);
        self.grow(n);
        let total = self.cumulative[n - 1];
        let u = rng.random::<f64>() * total;
        self.cumulative[..n].partition_point(|c| *c <= u).min(n - 1)
    }

    fn grow(&mut self, n: usize) {
        if self.cumulative.len() >= n {
            return;
        }
        self.cumulative.reserve(n - self.cumulative.len());
        let mut sum = self.cumulative.last().copied().unwrap_or(0.0);
        for k in self.cumulative.len() + 1..=n {
            sum += (k as f64).powf(-self.exponent);
            self.cumulative.push(sum);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn skewed_and_in_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut z = Zipf::new(1.1);
        let n = 1_000;
        let mut counts = vec![0u32; n];
        for _ in 0..100_000 {
            counts[z.sample(&mut rng, n)] += 1;
        }
        // Rank 1 is about twice as likely as rank 2, and the top 1 % takes most of the mass.
        assert!(
            counts[0] > counts[1] * 3 / 2 && counts[0] < counts[1] * 5 / 2,
            "{:?}",
            &counts[..4]
        );
        let top: u32 = counts[..10].iter().sum();
        assert!(top > 40_000, "top 1% got {top}");
        assert!(counts[n - 1] > 0 || counts[n - 100..].iter().sum::<u32>() > 0);
    }

    #[test]
    fn growing_population_and_degenerate_sizes() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut z = Zipf::new(1.0);
        assert_eq!(z.sample(&mut rng, 0), 0);
        assert_eq!(z.sample(&mut rng, 1), 0);
        for n in 1..500 {
            assert!(z.sample(&mut rng, n) < n);
        }
        // Smaller n after a larger one uses the prefix of the table.
        for _ in 0..100 {
            assert!(z.sample(&mut rng, 3) < 3);
        }
    }

    #[test]
    fn deterministic() {
        let draw = || {
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let mut z = Zipf::new(0.9);
            (0..1000).map(|i| z.sample(&mut rng, 10 + i)).collect::<Vec<_>>()
        };
        assert_eq!(draw(), draw());
    }
}
