//! Sweeps past one machine: `backtest --sweep ... --shard K/N --out FILE` runs one shard of the
//! grid and writes it as JSON lines; `backtest merge FILES...` ranks the union of the shards
//! exactly as one `backtest --sweep ...` would have.
//!
//! A shard file is one header line (what was swept, on what, ranked how) followed by one line per
//! combination: its index in the grid, its ranking key and the run as the sweep prints it. The
//! ranking key travels as the f64's bit pattern, so a merge orders the runs by the very values
//! the single sweep would have compared (JSON has no infinity, and `-inf` is how a run that could
//! not run ranks last).

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::app::backtest::{BacktestRequest, SweepRun, keep_metrics_of_top, rank_value};
use crate::domain::backtest::Metrics;
use crate::domain::market::candle::{CandleColumns, TimestampMs};

/// Written on every shard file's first line; a merge refuses any other.
const FORMAT: &str = "trademind-sweep-shard/1";

/// `--shard K/N`: the K-th of N shards, counted from 0 so that a scheduler's array index
/// (`$JOB_COMPLETION_INDEX`, `$SLURM_ARRAY_TASK_ID` with `--array=0-(N-1)`) can be passed as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("--shard {s:?}: expected K/N with 0 <= K < N, counted from 0 (e.g. 0/4 .. 3/4)")
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The grid indices this shard runs: every N-th combination starting at K. Interleaved
    /// rather than in blocks, because the grid is ordered by its first axis and runs along one
    /// axis cost alike (a block of slow SMA windows would make one shard the straggler).
    pub fn indices(self, combinations: usize) -> Vec<usize> {
        (self.index..combinations).step_by(self.count).collect()
    }
}

/// What every shard of one sweep must agree on, checked by the merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SweepIdentity {
    shards: usize,
    combinations: usize,
    rank_by: String,
    /// The `--sweep` arguments, in order (the grid's order depends on it).
    sweep: Vec<String>,
    /// The request without its source path: the same file may be mounted at different paths
    /// on different machines; the candles are compared by `candles`, `first` and `last`.
    request: serde_json::Value,
    candles: usize,
    first: Option<TimestampMs>,
    last: Option<TimestampMs>,
    /// Full metrics for the best this many runs of the whole sweep (`None`: every run, as
    /// `--all-metrics` asks and files written before this field kept).
    #[serde(default)]
    full_metrics_top: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    shard: usize,
    #[serde(flatten)]
    identity: SweepIdentity,
}

/// [`SweepRun`] as it is read back (it is only written by the app).
#[derive(Debug, Serialize, Deserialize)]
struct StoredRun {
    params: Vec<(String, f64)>,
    error: Option<String>,
    /// JSON has no infinities: an infinite score is written as `null` (the line's
    /// `rank_key_bits` keep it exactly for the ranking).
    #[serde(default)]
    score: Option<f64>,
    metrics: Option<Metrics>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    index: usize,
    /// `f64::to_bits` of the ranking key.
    rank_key_bits: u64,
    run: StoredRun,
}

/// The key a sweep ranks a run by (higher first): its score, else (a file written before
/// scores were) its metrics' value; a run with neither ranks last.
pub fn rank_key(rank_by: &str, run: &SweepRun) -> f64 {
    run.score
        .or_else(|| run.metrics.as_ref().and_then(|m| rank_value(rank_by, m)))
        .unwrap_or(f64::NEG_INFINITY)
}

/// Best first; equal keys keep grid order (a stable sort over runs given in grid order).
/// The one ranking both a sweep and a merge use, so that they cannot drift apart.
pub fn rank(mut keyed: Vec<(f64, SweepRun)>) -> Vec<SweepRun> {
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// Everything a shard file's header records about the sweep.
pub struct ShardSpec<'a> {
    pub shard: Shard,
    pub combinations: usize,
    pub rank_by: &'a str,
    /// See [`SweepRanking::full_metrics_top`](crate::app::backtest::SweepRanking).
    pub full_metrics_top: Option<usize>,
    pub sweep: &'a [String],
    pub request: &'a BacktestRequest,
    /// The candles swept (their count and first and last open times identify them).
    pub candles: &'a CandleColumns,
}

fn identity(spec: &ShardSpec<'_>) -> Result<SweepIdentity> {
    let mut request = serde_json::to_value(spec.request)?;
    if let Some(map) = request.as_object_mut() {
        map.remove("source");
    }
    Ok(SweepIdentity {
        shards: spec.shard.count,
        combinations: spec.combinations,
        rank_by: spec.rank_by.to_string(),
        sweep: spec.sweep.to_vec(),
        request,
        candles: spec.candles.len(),
        first: spec.candles.open_time.first().copied(),
        last: spec.candles.open_time.last().copied(),
        full_metrics_top: spec.full_metrics_top,
    })
}

/// Write a shard's runs (`indices[i]` is the grid index of `runs[i]`) to `out`. The file
/// appears only once complete: it is written beside `out` and renamed, so a killed job
/// leaves no shard a merge would take for a finished one.
pub fn write_shard(
    out: &Path,
    spec: &ShardSpec<'_>,
    indices: &[usize],
    runs: Vec<SweepRun>,
) -> Result<()> {
    if runs.len() != indices.len() {
        bail!(
            "the sweep stopped after {} of this shard's {} combinations: {} was not written",
            runs.len(),
            indices.len(),
            out.display()
        );
    }
    let header = Header {
        format: FORMAT.to_string(),
        shard: spec.shard.index,
        identity: identity(spec)?,
    };
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let write_err = || format!("cannot write {}", partial.display());
    serde_json::to_writer(&mut w, &header).with_context(write_err)?;
    w.write_all(b"\n").with_context(write_err)?;
    for (&index, run) in indices.iter().zip(runs) {
        let line = Line {
            index,
            rank_key_bits: rank_key(spec.rank_by, &run).to_bits(),
            run: StoredRun {
                params: run.params,
                error: run.error,
                score: run.score,
                metrics: run.metrics,
            },
        };
        serde_json::to_writer(&mut w, &line).with_context(write_err)?;
        w.write_all(b"\n").with_context(write_err)?;
    }
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(write_err)?;
    std::fs::rename(&partial, out)
        .with_context(|| format!("cannot move {} to {}", partial.display(), out.display()))
}

/// The ranking metric and the runs of the shard files, ranked as one sweep would rank them.
/// Refuses files of different sweeps, a shard given twice or missing, and any combination
/// missing, repeated or in the wrong shard.
pub fn merge(files: &[PathBuf]) -> Result<(String, Vec<SweepRun>)> {
    let mut identity: Option<(SweepIdentity, &Path)> = None;
    let mut shards_seen = BTreeSet::new();
    let mut slots: Vec<Option<(f64, SweepRun)>> = Vec::new();
    for path in files {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut lines = std::io::BufReader::new(file).lines().enumerate();
        let at = |n: usize| format!("{}:{}", path.display(), n + 1);
        let Some((_, first)) = lines.next() else {
            bail!("{}: empty, not a shard file", path.display());
        };
        let first = first.with_context(|| at(0))?;
        let header: Header = serde_json::from_str(&first)
            .ok()
            .filter(|h: &Header| h.format == FORMAT)
            .with_context(|| {
                format!(
                    "{}: not a shard file written by `backtest --sweep ... --shard K/N --out FILE` ({FORMAT})",
                    at(0)
                )
            })?;
        match &identity {
            None => {
                slots = (0..header.identity.combinations).map(|_| None).collect();
                identity = Some((header.identity.clone(), path));
            }
            Some((id, other)) if *id != header.identity => bail!(
                "{} and {} are shards of different sweeps (grid, strategy, costs, candles or ranking differ): merge the shards of one sweep",
                other.display(),
                path.display()
            ),
            Some(_) => {}
        }
        let shards = header.identity.shards;
        if header.shard >= shards || !shards_seen.insert(header.shard) {
            bail!(
                "{}: shard {}/{shards} is given twice (or is out of range)",
                path.display(),
                header.shard
            );
        }
        for (n, line) in lines {
            let line = line.with_context(|| at(n))?;
            if line.is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(&line).with_context(|| at(n))?;
            if line.index % shards != header.shard {
                bail!(
                    "{}: combination {} does not belong to shard {}/{shards}",
                    at(n),
                    line.index,
                    header.shard
                );
            }
            let Some(slot) = slots.get_mut(line.index) else {
                bail!(
                    "{}: combination {} is outside the grid of {}",
                    at(n),
                    line.index,
                    slots.len()
                );
            };
            if slot.is_some() {
                bail!("{}: combination {} appears twice", at(n), line.index);
            }
            let run = SweepRun {
                params: line.run.params,
                error: line.run.error,
                score: line.run.score,
                metrics: line.run.metrics,
            };
            *slot = Some((f64::from_bits(line.rank_key_bits), run));
        }
    }
    let Some((identity, _)) = identity else {
        bail!("no shard files given");
    };
    let missing: Vec<String> = (0..identity.shards)
        .filter(|k| !shards_seen.contains(k))
        .map(|k| format!("{k}/{}", identity.shards))
        .collect();
    if !missing.is_empty() {
        bail!(
            "shard(s) {} missing: a merge needs every shard of the sweep",
            missing.join(", ")
        );
    }
    let runs: Vec<(f64, SweepRun)> = slots
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            s.with_context(|| format!("combination {i} is in no shard file (a truncated file?)"))
        })
        .collect::<Result<_>>()?;
    // Each shard kept the full metrics of its own best runs; the sweep's best are among them.
    let mut ranked = rank(runs);
    if let Some(top) = identity.full_metrics_top {
        keep_metrics_of_top(&mut ranked, top);
    }
    Ok((identity.rank_by, ranked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_is_counted_from_zero_and_refuses_k_outside_n() {
        assert_eq!("3/4".parse(), Ok(Shard { index: 3, count: 4 }));
        for bad in ["4/4", "1/0", "-1/4", "1", "a/b"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_cover_the_grid_once_interleaved() {
        let n = 4;
        let mut all: Vec<usize> = (0..n)
            .flat_map(|k| Shard { index: k, count: n }.indices(10))
            .collect();
        assert_eq!(Shard { index: 1, count: n }.indices(10), vec![1, 5, 9]);
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}
