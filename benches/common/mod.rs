//! Timing helpers shared by the benchmarks.

use std::time::Duration;

/// CPU time this thread has run, to the nanosecond (`CLOCK_THREAD_CPUTIME_ID`), so that a figure
/// taken on a shared, oversubscribed machine is not inflated by time spent waiting for a core.
/// (`/proc/thread-self/schedstat` is only brought up to date at scheduler ticks, every 4 ms
/// here, too coarse for runs of a few milliseconds.)
pub fn thread_cpu() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through the valid pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}
