//! One accepted connection, served as one task.
//!
//! hyper serves each HTTP/2 stream (each native gRPC call) in a task of its
//! own, spawned on the runtime through the executor it is given: every call
//! then costs a spawn, and every reply a wake-up of the connection's task,
//! often on another worker thread (a futex wake and a context switch each).
//! Measured by payment-bench, that made native gRPC cost about 0.1 ms more
//! CPU per payment than gRPC-Web, whose HTTP/1.1 calls run inside their
//! connection's task.
//!
//! Here the executor hyper gets for a connection only queues the stream's
//! future, and [`drive`] polls the connection and all of its streams inside
//! the one task that serves the connection. The streams of one connection
//! still run concurrently (interleaved at their await points), and different
//! connections still spread over the runtime's workers.

use futures_util::stream::{FuturesUnordered, StreamExt as _};
use futures_util::task::AtomicWaker;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Rounds of polling (the connection, then its streams) one poll of the
/// task makes while they keep waking each other, before it yields to the
/// runtime's other tasks.
const ROUNDS_PER_POLL_MAX: usize = 16;

/// The executor hyper is given for one connection: it queues each stream's
/// future for that connection's task, which [`drive`] polls.
#[derive(Clone, Default)]
pub struct ConnectionExecutor {
    shared: Arc<Shared>,
}

/// What the connection's task shares with its executor and with the wakers
/// it hands to the connection and the streams.
#[derive(Default)]
struct Shared {
    queued: Mutex<Vec<StreamFuture>>,
    /// The task is inside a round: a wake-up only asks for another round.
    polling: AtomicBool,
    /// Something woke during the round.
    woken: AtomicBool,
    task: AtomicWaker,
}

/// A wake-up of the connection or of a stream. While the task is polling
/// them it asks for one more round instead of rescheduling the task (which
/// would send it through the runtime's queue and wake another worker).
impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

impl<F> hyper::rt::Executor<F> for ConnectionExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, future: F) {
        match self.shared.queued.lock() {
            Ok(mut queued) => queued.push(Box::pin(future)),
            // A poisoned queue (a panic while it was held, which pushing and
            // draining cannot cause): run the stream as a task of its own.
            Err(_) => {
                tokio::spawn(future);
                return;
            }
        }
        self.shared.wake_by_ref();
    }
}

impl ConnectionExecutor {
    fn take_queued(&self) -> Vec<StreamFuture> {
        self.shared
            .queued
            .lock()
            .map(|mut queued| std::mem::take(&mut *queued))
            .unwrap_or_default()
    }
}

/// Serves `connection` and every stream it hands to `executor`, in the
/// calling task; completes with the connection's result once the
/// connection and all of its streams are done.
pub async fn drive<C, T>(executor: ConnectionExecutor, connection: C) -> T
where
    C: Future<Output = T>,
{
    let mut connection = std::pin::pin!(connection);
    let mut result = None;
    let mut streams = FuturesUnordered::<StreamFuture>::new();
    let shared = executor.shared.clone();
    let inner = Waker::from(shared.clone());
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        shared.task.register(cx.waker());
        let mut inner_cx = Context::from_waker(&inner);
        for _ in 0..ROUNDS_PER_POLL_MAX {
            shared.polling.store(true, Ordering::SeqCst);
            shared.woken.store(false, Ordering::SeqCst);
            if result.is_none()
                && let Poll::Ready(output) = connection.as_mut().poll(&mut inner_cx)
            {
                result = Some(output);
            }
            streams.extend(executor.take_queued());
            // FuturesUnordered returns Pending after a bounded number of
            // polls, waking: that asks for another round.
            while let Poll::Ready(Some(())) = streams.poll_next_unpin(&mut inner_cx) {}
            shared.polling.store(false, Ordering::SeqCst);
            if !shared.woken.swap(false, Ordering::SeqCst) {
                // Nothing woke during the round: the connection and the
                // streams all wait on something outside.
                let queued = shared.queued.lock().is_ok_and(|q| !q.is_empty());
                if streams.is_empty()
                    && !queued
                    && let Some(output) = result.take()
                {
                    return Poll::Ready(output);
                }
                return Poll::Pending;
            }
        }
        // Still busy: let the runtime's other tasks run, then continue.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor as _;

    #[tokio::test]
    async fn streams_queued_by_the_connection_run_in_its_task() {
        let executor = ConnectionExecutor::default();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<u32>();
        let spawner = executor.clone();
        let connection = async move {
            // The connection hands out a stream, then waits for its result.
            spawner.execute(async move {
                tokio::task::yield_now().await;
                let _ = done_tx.send(7);
            });
            done_rx.await.unwrap_or(0)
        };
        assert_eq!(drive(executor, connection).await, 7);
    }

    #[tokio::test]
    async fn the_connection_finishes_after_its_last_stream() {
        let executor = ConnectionExecutor::default();
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, spawner) = (finished.clone(), executor.clone());
        let connection = async move {
            spawner.execute(async move {
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            "closed"
        };
        assert_eq!(drive(executor, connection).await, "closed");
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    }
}
