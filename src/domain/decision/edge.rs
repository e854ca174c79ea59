//! Proof of edge after cost: the paired, moving-block bootstrap of two runs' per-candle returns
//! on the same candles, giving a confidence interval for the difference in total return and in
//! Sharpe ratio. Pure and seeded, so a comparison prints the same interval every time.

use serde::Serialize;

/// A confidence interval around a point estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval95 {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// Run A minus run B, with 95 % intervals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EdgeEstimate {
    /// Difference in total return, as a fraction (0.05 = 5 points).
    pub return_diff: Interval95,
    /// Difference in annualised Sharpe ratio.
    pub sharpe_diff: Interval95,
    pub block_len: usize,
    pub resamples: usize,
    pub seed: u64,
}

/// SplitMix64: a few lines, and the same sequence for a seed on every platform and crate
/// version, which is what a reproducible interval needs.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Per-period returns of an equity curve.
pub fn returns(equity: &[f64]) -> Vec<f64> {
    equity
        .windows(2)
        .map(|w| if w[0] > 0.0 { w[1] / w[0] - 1.0 } else { 0.0 })
        .collect()
}

fn total_return(r: &[f64]) -> f64 {
    r.iter().fold(1.0, |acc, x| acc * (1.0 + x)) - 1.0
}

/// Annualised Sharpe of per-period returns (0 for a flat series).
pub fn sharpe(r: &[f64], periods_per_year: f64) -> f64 {
    let n = r.len() as f64;
    if r.len() < 2 {
        return 0.0;
    }
    let mean = r.iter().sum::<f64>() / n;
    let var = r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let sd = var.sqrt();
    if sd < 1e-15 {
        0.0
    } else {
        mean / sd * periods_per_year.sqrt()
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// The moving-block resampler behind every interval here: `resamples` paired resamples of `a`
/// and `b` (blocks of about √n consecutive periods keep the autocorrelation that a per-period
/// resample would destroy; both series are resampled with the same blocks), each handed to
/// `stat`. Returns the statistic of each resample in draw order, and the block length. The
/// draws depend only on the series length and the seed, so series of the same length get the
/// same blocks.
fn resample_paired<T>(
    a: &[f64],
    b: &[f64],
    resamples: usize,
    seed: u64,
    mut stat: impl FnMut(&[f64], &[f64]) -> T,
) -> (Vec<T>, usize) {
    let n = a.len().min(b.len());
    let block_len = (n as f64).sqrt().ceil().max(1.0) as usize;
    let mut rng = SplitMix(seed);
    let mut out = Vec::with_capacity(resamples);
    let (mut ra, mut rb) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..resamples {
        ra.clear();
        rb.clear();
        while ra.len() < n {
            let start = rng.below(n);
            for k in 0..block_len {
                if ra.len() == n {
                    break;
                }
                // Circular blocks: every period is equally likely to be drawn.
                let i = (start + k) % n;
                ra.push(a[i]);
                rb.push(b[i]);
            }
        }
        out.push(stat(&ra, &rb));
    }
    (out, block_len)
}

fn interval(mut replicates: Vec<f64>, estimate: f64) -> Interval95 {
    replicates.sort_by(f64::total_cmp);
    Interval95 {
        estimate,
        low: percentile(&replicates, 0.025),
        high: percentile(&replicates, 0.975),
    }
}

/// Bootstrap the difference between paired return series `a` and `b` (same candles, same
/// length) with the moving-block resampler. `None` when there are fewer than 2 periods.
pub fn bootstrap_difference(
    a: &[f64],
    b: &[f64],
    periods_per_year: f64,
    resamples: usize,
    seed: u64,
) -> Option<EdgeEstimate> {
    let n = a.len().min(b.len());
    if n < 2 || resamples == 0 {
        return None;
    }
    let (diffs, block_len) = resample_paired(a, b, resamples, seed, |ra, rb| {
        (
            total_return(ra) - total_return(rb),
            sharpe(ra, periods_per_year) - sharpe(rb, periods_per_year),
        )
    });
    let (ret, shp): (Vec<f64>, Vec<f64>) = diffs.into_iter().unzip();
    Some(EdgeEstimate {
        return_diff: interval(ret, total_return(&a[..n]) - total_return(&b[..n])),
        sharpe_diff: interval(
            shp,
            sharpe(&a[..n], periods_per_year) - sharpe(&b[..n], periods_per_year),
        ),
        block_len,
        resamples,
        seed,
    })
}

/// One series in a pooled interval: its per-period returns and a known amount taken off its
/// total return (the LLM's cost as a fraction of the starting cash).
#[derive(Debug, Clone, Copy)]
pub struct CostedSeries<'a> {
    pub returns: &'a [f64],
    pub cost_fraction: f64,
}

/// The 95 % interval of the mean, over several series, of each one's total return net of its
/// cost: each series is resampled by the same block bootstrap as [`bootstrap_difference`]
/// (against holding cash, a zero return), and resample `i` of the mean is the mean of the
/// series' resamples `i`. With one series this is `bootstrap_difference(returns, zeros)`
/// shifted by its cost. `None` when any series has fewer than 2 periods, or there is none.
pub fn bootstrap_mean_net_return(
    series: &[CostedSeries<'_>],
    resamples: usize,
    seed: u64,
) -> Option<Interval95> {
    if series.is_empty() || resamples == 0 || series.iter().any(|s| s.returns.len() < 2) {
        return None;
    }
    let k = series.len() as f64;
    let mut sums = vec![0.0; resamples];
    let mut estimate = 0.0;
    for s in series {
        let cash = vec![0.0; s.returns.len()];
        let (diffs, _) = resample_paired(s.returns, &cash, resamples, seed, |ra, rb| {
            total_return(ra) - total_return(rb)
        });
        for (sum, d) in sums.iter_mut().zip(diffs) {
            *sum += (d - s.cost_fraction) / k;
        }
        estimate += (total_return(s.returns) - s.cost_fraction) / k;
    }
    Some(interval(sums, estimate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_constant_edge_has_a_zero_width_interval_at_its_exact_value() {
        // A earns 1 % a period, B nothing: every resample is 100 periods of 1 %, so the
        // difference is exactly 1.01^100 - 1 in every one of them.
        let a = vec![0.01; 100];
        let b = vec![0.0; 100];
        let e = bootstrap_difference(&a, &b, 8760.0, 500, 7).unwrap();
        let exact = 1.01f64.powi(100) - 1.0;
        for v in [
            e.return_diff.estimate,
            e.return_diff.low,
            e.return_diff.high,
        ] {
            assert!((v - exact).abs() < 1e-9, "{v} vs {exact}");
        }
        assert_eq!(e.block_len, 10);
    }

    #[test]
    fn identical_runs_differ_by_exactly_zero_in_return_and_sharpe() {
        let a: Vec<f64> = (0..50)
            .map(|i| ((i * 37 % 11) as f64 - 5.0) / 1000.0)
            .collect();
        let e = bootstrap_difference(&a, &a, 8760.0, 300, 1).unwrap();
        assert_eq!(
            (
                e.return_diff.low,
                e.return_diff.high,
                e.sharpe_diff.low,
                e.sharpe_diff.high
            ),
            (0.0, 0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn the_interval_is_reproducible_for_a_seed_and_brackets_a_noisy_zero_edge() {
        // Paired noise with no edge: the interval holds 0, and the same seed gives the same
        // interval.
        let mut rng = SplitMix(99);
        let a: Vec<f64> = (0..400)
            .map(|_| (rng.next() % 2001) as f64 / 100_000.0 - 0.01)
            .collect();
        let b: Vec<f64> = (0..400)
            .map(|_| (rng.next() % 2001) as f64 / 100_000.0 - 0.01)
            .collect();
        let one = bootstrap_difference(&a, &b, 8760.0, 1000, 42).unwrap();
        let two = bootstrap_difference(&a, &b, 8760.0, 1000, 42).unwrap();
        assert_eq!(one, two);
        assert!(one.return_diff.low < one.return_diff.high);
        assert!(
            one.sharpe_diff.low < 0.0 && one.sharpe_diff.high > 0.0,
            "{one:?}"
        );
        let other = bootstrap_difference(&a, &b, 8760.0, 1000, 43).unwrap();
        assert_ne!(one.return_diff.low, other.return_diff.low);
    }

    #[test]
    fn the_mean_net_return_of_one_series_is_its_difference_from_cash_less_its_cost() {
        let a: Vec<f64> = (0..60)
            .map(|i| ((i * 37 % 11) as f64 - 4.0) / 1000.0)
            .collect();
        let cash = vec![0.0; a.len()];
        let diff = bootstrap_difference(&a, &cash, 8760.0, 400, 5).unwrap();
        let one = bootstrap_mean_net_return(
            &[CostedSeries {
                returns: &a,
                cost_fraction: 0.002,
            }],
            400,
            5,
        )
        .unwrap();
        for (x, y) in [
            (one.estimate, diff.return_diff.estimate),
            (one.low, diff.return_diff.low),
            (one.high, diff.return_diff.high),
        ] {
            assert!((x - (y - 0.002)).abs() < 1e-12, "{one:?} vs {diff:?}");
        }
    }

    #[test]
    fn the_mean_of_two_constant_series_is_exact_and_too_short_a_series_has_no_interval() {
        // 1 % a period for 10 periods less 2 points of cost, and 0.5 % a period for free.
        let a = vec![0.01; 10];
        let b = vec![0.005; 10];
        let mean = bootstrap_mean_net_return(
            &[
                CostedSeries {
                    returns: &a,
                    cost_fraction: 0.02,
                },
                CostedSeries {
                    returns: &b,
                    cost_fraction: 0.0,
                },
            ],
            300,
            9,
        )
        .unwrap();
        let exact = ((1.01f64.powi(10) - 1.0 - 0.02) + (1.005f64.powi(10) - 1.0)) / 2.0;
        for v in [mean.estimate, mean.low, mean.high] {
            assert!((v - exact).abs() < 1e-12, "{v} vs {exact}");
        }
        let short = [0.01];
        assert_eq!(
            bootstrap_mean_net_return(
                &[CostedSeries {
                    returns: &short,
                    cost_fraction: 0.0
                }],
                300,
                9
            ),
            None
        );
    }
}
