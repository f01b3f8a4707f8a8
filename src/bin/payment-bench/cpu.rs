//! The service's CPU time: Linux's per-thread accounting (schedstat) of the
//! service runtime's threads.

use std::sync::{Arc, Mutex};

/// What the service CPU figure includes, printed with it.
pub const CPU_MEANS: &str = "user+system CPU time of the service runtime's threads (its workers and any blocking threads; /proc/self/task/<tid>/schedstat): HTTP/2 or HTTP/1.1, gRPC(-Web), token checks, the ledger and the AWS SDK client (SigV4 signing, HTTP to DynamoDB); not DynamoDB Local (another process) nor the load generator's clients (their own runtime). The direct phase runs on the same runtime: the ledger and the SDK plus the benchmark's own loop";

/// CPU time of a set of threads (a runtime's), from Linux's per-thread
/// accounting: threads register when they start; a thread that stops leaves
/// its time behind.
#[derive(Debug, Clone, Default)]
pub struct ThreadCpu(Arc<Mutex<ThreadCpuState>>);

#[derive(Debug, Default)]
struct ThreadCpuState {
    live: Vec<u32>,
    stopped_ns: u64,
}

impl ThreadCpu {
    pub fn thread_started(&self) {
        if let (Some(tid), Ok(mut state)) = (current_tid(), self.0.lock()) {
            state.live.push(tid);
        }
    }

    pub fn thread_stopping(&self) {
        if let (Some(tid), Ok(mut state)) = (current_tid(), self.0.lock()) {
            state.stopped_ns += thread_cpu_ns(tid).unwrap_or(0);
            state.live.retain(|t| *t != tid);
        }
    }

    /// CPU time so far of every thread registered, or None where Linux's
    /// /proc does not tell.
    pub fn total_ns(&self) -> Option<u64> {
        let state = self.0.lock().ok()?;
        let mut total = state.stopped_ns;
        for tid in &state.live {
            total += thread_cpu_ns(*tid)?;
        }
        Some(total)
    }
}

/// This thread's id, from /proc/thread-self (a link to `<pid>/task/<tid>`).
fn current_tid() -> Option<u32> {
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

/// User+system CPU time of thread `tid` of this process: schedstat's first
/// field (nanoseconds), else stat's utime+stime (clock ticks of 10 ms).
fn thread_cpu_ns(tid: u32) -> Option<u64> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        && let Some(ns) = text.split_whitespace().next().and_then(|f| f.parse().ok())
    {
        return Some(ns);
    }
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is the
    // 3rd field of the line, utime and stime the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10_000_000)
}
