//! The in-process scheduler that replaces the seed's Celery beat.
//!
//! Each periodic job runs in its own task: it sleeps until its next slot, runs to completion,
//! and only then computes the following slot from the current time. So a job never overlaps
//! itself, and after a long run, a pause or a machine sleep it runs once — missed slots are
//! skipped, never replayed in a burst. Slots can be aligned to wall-clock multiples of the period
//! (candle closes: :00, :15, :30, :45 for 15 minutes). Every run's start, end and error go to a
//! `RunRecorder` for the health view. On-demand work (backtests) goes through a bounded queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A job's body: an async function returning an error message on failure.
pub type JobFn =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// When a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every `period` after the previous run finished (first run after one period).
    Every(Duration),
    /// At wall-clock multiples of `period` since the Unix epoch, plus `offset` (e.g. a few
    /// seconds after a candle closes so the closed candle is available).
    Aligned { period: Duration, offset: Duration },
}

/// Wall-clock milliseconds; injected so tests run on tokio's paused time.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

/// Wall time that advances with tokio's clock: real in production, virtual under
/// `#[tokio::test(start_paused = true)]`.
#[derive(Debug, Clone)]
pub struct TokioClock {
    base_wall_ms: i64,
    base: tokio::time::Instant,
}

impl TokioClock {
    pub fn new(base_wall_ms: i64) -> Self {
        TokioClock {
            base_wall_ms,
            base: tokio::time::Instant::now(),
        }
    }

    /// Anchored to the system clock now.
    pub fn system() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self::new(now)
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> i64 {
        self.base_wall_ms + self.base.elapsed().as_millis() as i64
    }
}

/// One finished run; it lives with its table in `store::jobs` (the store sits below `app/`).
pub use crate::store::jobs::JobRun;

/// Where runs are recorded (SQLite `job_runs` in the app, memory in tests).
pub trait RunRecorder: Send + Sync {
    fn record(&self, run: &JobRun);
}

/// Keeps runs in memory (tests, and the TUI's recent-runs list).
#[derive(Debug, Default)]
pub struct MemoryRecorder {
    runs: Mutex<Vec<JobRun>>,
}

impl MemoryRecorder {
    pub fn runs(&self) -> Vec<JobRun> {
        self.runs.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl RunRecorder for MemoryRecorder {
    fn record(&self, run: &JobRun) {
        if let Ok(mut runs) = self.runs.lock() {
            runs.push(run.clone());
        }
    }
}

/// The next slot strictly after `now_ms`.
pub fn next_fire_ms(schedule: Schedule, now_ms: i64, last_finished_ms: i64) -> i64 {
    match schedule {
        Schedule::Every(period) => last_finished_ms + period.as_millis() as i64,
        Schedule::Aligned { period, offset } => {
            let p = (period.as_millis() as i64).max(1);
            let o = offset.as_millis() as i64;
            let base = (now_ms - o).div_euclid(p) * p + o;
            if base > now_ms { base } else { base + p }
        }
    }
}

struct JobSpec {
    name: String,
    schedule: Schedule,
    run: JobFn,
}

/// Builds and runs the periodic jobs until cancelled.
pub struct Scheduler {
    jobs: Vec<JobSpec>,
    clock: Arc<dyn Clock>,
    recorder: Arc<dyn RunRecorder>,
    paused: watch::Receiver<bool>,
}

/// Pauses and resumes every job (the kill switch pauses trading through its own flag; this one
/// stops the scheduler's jobs from starting new runs).
#[derive(Debug, Clone)]
pub struct PauseHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl PauseHandle {
    pub fn pause(&self) {
        let _ = self.tx.send(true);
    }
    pub fn resume(&self) {
        let _ = self.tx.send(false);
    }
    pub fn is_paused(&self) -> bool {
        *self.tx.borrow()
    }
}

impl Scheduler {
    pub fn new(clock: Arc<dyn Clock>, recorder: Arc<dyn RunRecorder>) -> (Scheduler, PauseHandle) {
        let (tx, rx) = watch::channel(false);
        (
            Scheduler {
                jobs: Vec::new(),
                clock,
                recorder,
                paused: rx,
            },
            PauseHandle { tx: Arc::new(tx) },
        )
    }

    pub fn add<F, Fut>(&mut self, name: &str, schedule: Schedule, job: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let run: JobFn = Arc::new(move || Box::pin(job()));
        self.jobs.push(JobSpec {
            name: name.to_string(),
            schedule,
            run,
        });
    }

    /// Run every job until `cancel` fires; returns after each job's current run has finished.
    pub async fn run(self, cancel: CancellationToken) {
        let mut set = JoinSet::new();
        for job in self.jobs {
            let clock = self.clock.clone();
            let recorder = self.recorder.clone();
            let cancel = cancel.clone();
            let paused = self.paused.clone();
            set.spawn(job_loop(job, clock, recorder, cancel, paused));
        }
        while set.join_next().await.is_some() {}
    }
}

async fn job_loop(
    job: JobSpec,
    clock: Arc<dyn Clock>,
    recorder: Arc<dyn RunRecorder>,
    cancel: CancellationToken,
    mut paused: watch::Receiver<bool>,
) {
    let mut last_finished = clock.now_ms();
    loop {
        let now = clock.now_ms();
        let next = next_fire_ms(job.schedule, now, last_finished).max(now);
        let wait = Duration::from_millis((next - now) as u64);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        // While paused, wait for resume (or shutdown) and then take the next slot, not a burst.
        if *paused.borrow() {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    changed = paused.changed() => {
                        if changed.is_err() { return; }
                        if !*paused.borrow() { break; }
                    }
                }
            }
            last_finished = clock.now_ms();
            continue;
        }
        let started_at = clock.now_ms();
        tracing::debug!(job = %job.name, "job started");
        // The run is awaited here, so the same job can never run twice at once. Shutdown waits
        // for the run in flight (in-flight order handling finishes).
        let result = (job.run)().await;
        let finished_at = clock.now_ms();
        if let Err(e) = &result {
            tracing::warn!(job = %job.name, error = %e, "job failed");
        }
        recorder.record(&JobRun {
            job: job.name.clone(),
            started_at,
            finished_at,
            error: result.err(),
        });
        last_finished = finished_at;
        if cancel.is_cancelled() {
            return;
        }
    }
}

/// A bounded queue of on-demand work (the seed's `run_backtest`): submitting never blocks the
/// caller; a full queue is refused with a clear error instead of growing without bound.
pub struct OnDemandQueue<T> {
    tx: mpsc::Sender<T>,
}

impl<T> Clone for OnDemandQueue<T> {
    fn clone(&self) -> Self {
        OnDemandQueue {
            tx: self.tx.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is full ({0} waiting); try again when a run has finished")]
    Full(usize),
    #[error("the worker has stopped")]
    Stopped,
}

impl<T: Send + 'static> OnDemandQueue<T> {
    /// Start a worker that handles items one at a time with `handle`, until cancelled.
    pub fn start<F, Fut>(
        capacity: usize,
        cancel: CancellationToken,
        handle: F,
    ) -> (Self, tokio::task::JoinHandle<()>)
    where
        F: Fn(T) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let capacity = capacity.max(1);
        let (tx, mut rx) = mpsc::channel::<T>(capacity);
        let worker = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    item = rx.recv() => match item {
                        Some(item) => handle(item).await,
                        None => return,
                    }
                }
            }
        });
        (OnDemandQueue { tx }, worker)
    }

    pub fn submit(&self, item: T) -> Result<(), QueueError> {
        self.tx.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Full(self.tx.max_capacity()),
            mpsc::error::TrySendError::Closed(_) => QueueError::Stopped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const MIN: i64 = 60_000;
    // 2026-11-24 10:07:00 UTC, an arbitrary time that is not on a 15-minute boundary.
    const T0: i64 = 1_795_514_820_000;

    #[test]
    fn aligned_slots_fall_on_candle_closes() {
        let s = Schedule::Aligned {
            period: Duration::from_secs(900),
            offset: Duration::ZERO,
        };
        let next = next_fire_ms(s, T0, T0);
        assert_eq!(next % (15 * MIN), 0);
        assert!(next > T0 && next - T0 <= 15 * MIN);
        // exactly on a boundary: the next one, never "now" again
        assert_eq!(next_fire_ms(s, next, next), next + 15 * MIN);
        let with_offset = Schedule::Aligned {
            period: Duration::from_secs(900),
            offset: Duration::from_secs(5),
        };
        assert_eq!(next_fire_ms(with_offset, next, next), next + 5_000);
    }

    fn counting_job(
        counter: Arc<AtomicUsize>,
        takes: Duration,
    ) -> impl Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> {
        move || {
            let counter = counter.clone();
            Box::pin(async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(takes).await;
                Ok(())
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn fifteen_minute_and_thirty_second_jobs_fire_on_time() {
        let clock = Arc::new(TokioClock::new(T0));
        let recorder = Arc::new(MemoryRecorder::default());
        let (mut sched, _pause) = Scheduler::new(clock.clone(), recorder.clone());
        let trading = Arc::new(AtomicUsize::new(0));
        let monitor = Arc::new(AtomicUsize::new(0));
        sched.add(
            "autonomous_trading",
            Schedule::Aligned {
                period: Duration::from_secs(900),
                offset: Duration::ZERO,
            },
            counting_job(trading.clone(), Duration::ZERO),
        );
        sched.add(
            "monitor_orders",
            Schedule::Every(Duration::from_secs(30)),
            counting_job(monitor.clone(), Duration::ZERO),
        );
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(sched.run(cancel.clone()));
        // one hour from 10:07: trading at 10:15, 10:30, 10:45, 11:00 -> 4; monitor every 30 s -> 120
        tokio::time::sleep(Duration::from_secs(3600) + Duration::from_millis(10)).await;
        assert_eq!(trading.load(Ordering::SeqCst), 4);
        assert_eq!(monitor.load(Ordering::SeqCst), 120);
        let runs = recorder.runs();
        let trading_runs: Vec<_> = runs
            .iter()
            .filter(|r| r.job == "autonomous_trading")
            .collect();
        assert!(
            trading_runs.iter().all(|r| r.started_at % (15 * MIN) == 0),
            "aligned to candle closes"
        );
        assert!(runs.iter().all(|r| r.error.is_none()));
        cancel.cancel();
        handle.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_job_never_overlaps_itself_and_skips_missed_slots() {
        let clock = Arc::new(TokioClock::new(T0));
        let recorder = Arc::new(MemoryRecorder::default());
        let (mut sched, _pause) = Scheduler::new(clock.clone(), recorder.clone());
        let running = Arc::new(AtomicUsize::new(0));
        let max_running = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let (r, m, c) = (running.clone(), max_running.clone(), calls.clone());
        // every 30 s, but the first run takes 10 minutes (a hung exchange call)
        sched.add(
            "monitor_orders",
            Schedule::Aligned {
                period: Duration::from_secs(30),
                offset: Duration::ZERO,
            },
            move || {
                let (r, m, c) = (r.clone(), m.clone(), c.clone());
                Box::pin(async move {
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    let takes = if n == 0 {
                        Duration::from_secs(600)
                    } else {
                        Duration::from_millis(1)
                    };
                    tokio::time::sleep(takes).await;
                    r.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
            },
        );
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(sched.run(cancel.clone()));
        // first slot at 10:07:30; the run ends 10:17:30; the next slot is 10:18:00, not a burst of 20
        tokio::time::sleep(Duration::from_secs(30 + 600 + 31)).await;
        assert_eq!(
            max_running.load(Ordering::SeqCst),
            1,
            "never two runs at once"
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one run after the long one, not a burst"
        );
        let runs = recorder.runs();
        assert_eq!(runs[1].started_at - runs[0].finished_at, 30_000);
        cancel.cancel();
        handle.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn pause_stops_new_runs_and_resume_does_not_burst() {
        let clock = Arc::new(TokioClock::new(T0));
        let recorder = Arc::new(MemoryRecorder::default());
        let (mut sched, pause) = Scheduler::new(clock.clone(), recorder.clone());
        let calls = Arc::new(AtomicUsize::new(0));
        sched.add(
            "update_prices",
            Schedule::Every(Duration::from_secs(10)),
            counting_job(calls.clone(), Duration::ZERO),
        );
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(sched.run(cancel.clone()));
        tokio::time::sleep(Duration::from_millis(30_500)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        pause.pause();
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "no run while paused");
        pause.resume();
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        // at most the one slot that was waiting at the pause plus one regular slot
        let after = calls.load(Ordering::SeqCst);
        assert!((4..=5).contains(&after), "resumed without a burst: {after}");
        cancel.cancel();
        handle.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_recorded_and_the_job_keeps_its_schedule() {
        let clock = Arc::new(TokioClock::new(T0));
        let recorder = Arc::new(MemoryRecorder::default());
        let (mut sched, _pause) = Scheduler::new(clock, recorder.clone());
        sched.add("flaky", Schedule::Every(Duration::from_secs(5)), || async {
            Err("exchange unreachable".to_string())
        });
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(sched.run(cancel.clone()));
        tokio::time::sleep(Duration::from_millis(15_100)).await;
        cancel.cancel();
        handle.await.unwrap();
        let runs = recorder.runs();
        assert_eq!(runs.len(), 3);
        assert!(
            runs.iter()
                .all(|r| r.error.as_deref() == Some("exchange unreachable"))
        );
    }

    #[tokio::test]
    async fn on_demand_queue_is_bounded_and_runs_in_order() {
        let cancel = CancellationToken::new();
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        let gate = Arc::new(tokio::sync::Mutex::new(Some(gate_rx)));
        let done = Arc::new(Mutex::new(Vec::new()));
        let d = done.clone();
        let (queue, worker) = OnDemandQueue::start(2, cancel.clone(), move |n: u32| {
            let d = d.clone();
            let gate = gate.clone();
            async move {
                if let Some(rx) = gate.lock().await.take() {
                    let _ = rx.await; // the first run blocks until released
                }
                d.lock().unwrap().push(n);
            }
        });
        queue.submit(1).unwrap();
        tokio::task::yield_now().await; // worker takes item 1 and blocks
        tokio::time::sleep(Duration::from_millis(10)).await;
        queue.submit(2).unwrap();
        queue.submit(3).unwrap();
        assert_eq!(queue.submit(4), Err(QueueError::Full(2)));
        gate_tx.send(()).unwrap();
        for _ in 0..100 {
            if done.lock().unwrap().len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(*done.lock().unwrap(), vec![1, 2, 3]);
        cancel.cancel();
        worker.await.unwrap();
    }
}
