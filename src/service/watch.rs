//! WatchAccount: an account's new history entries as they commit, by
//! polling its shards with backoff (docs/watch.md), resumable by token.

use super::convert::entry_message;
use super::deadline::{deadline, until};
use super::history::HISTORY_BUFFER_ENTRIES;
use super::{PaymentApi, WatchStream};
use crate::auth::Caller;
use crate::domain::{
    AccountId, InvalidField, WATCH_LONG_POLL_SECONDS_MAX, WATCH_SECONDS_MAX, WatchRequest,
    WatchToken,
};
use crate::error::{CutOff, ServiceError};
use crate::ledger::{self, Ledger, WatchCursor};
use crate::pb;
use crate::telemetry::{Transport, current_meter, metered};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

impl PaymentApi {
    pub(super) async fn watch_account_call(
        &self,
        caller: &Caller,
        request: Request<pb::WatchAccountRequest>,
    ) -> Result<Response<WatchStream>, ServiceError> {
        let deadline = deadline(&request);
        let long_poll = request.extensions().get::<Transport>() == Some(&Transport::Lambda);
        let r = request.into_inner();
        let watch = WatchRequest::parse(&r.account_id, &r.resume_token, r.max_seconds)?;
        // As for history: refusals come before the stream starts.
        let account = until(
            deadline,
            CutOff::Read,
            self.readable_account(caller, &watch.account_id),
        )
        .await?;
        let cursor = WatchCursor::new(&account, watch.resume.as_deref())?.ok_or_else(|| {
            InvalidField::new(
                "resume_token",
                "does not fit this account's history (it is ahead of it, or names more shards than it has); start with an empty resume_token",
            )
        })?;
        let bound_seconds = if long_poll {
            WATCH_LONG_POLL_SECONDS_MAX
        } else {
            WATCH_SECONDS_MAX
        };
        let seconds = watch
            .max_seconds
            .unwrap_or(bound_seconds)
            .min(bound_seconds);
        let mut ends_at = tokio::time::Instant::now() + Duration::from_secs(u64::from(seconds));
        // A caller's deadline ends the watch in time for its last message.
        if let Some(at) = deadline {
            ends_at = ends_at.min(at.checked_sub(WATCH_END_MARGIN).unwrap_or(at));
        }
        let (tx, rx) = mpsc::channel(HISTORY_BUFFER_ENTRIES);
        let ledger = self.ledger.clone();
        let watcher = Watcher {
            account_id: watch.account_id,
            cursor,
            ends_at,
            long_poll,
            stopping: self.stopping.clone(),
        };
        tokio::spawn(metered(current_meter(), async move {
            let watched = until(deadline, CutOff::Read, watcher.run(&ledger, &tx));
            if let Err(err) = watched.await {
                let status = Status::from(err);
                tracing::warn!(code = ?status.code(), message = status.message(), "watch failed midway");
                let _ = tx.send(Err(status)).await;
            }
        }));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// How long before the caller's deadline a watch stops polling, so that its
/// last message (the resume token) reaches the caller in time.
const WATCH_END_MARGIN: Duration = Duration::from_millis(250);
/// Pause between polls right after one that found entries.
pub const WATCH_POLL_PAUSE_MIN: Duration = Duration::from_millis(100);
/// Longest pause between polls of an idle watch: it doubles from
/// [`WATCH_POLL_PAUSE_MIN`] with every empty poll up to this, so an idle
/// watcher polls about once a second (docs/watch.md gives the cost).
pub const WATCH_POLL_PAUSE_MAX: Duration = Duration::from_secs(1);

/// One WatchAccount call's loop: poll, send, pause with backoff, until its
/// bound (or, as a long poll, its first entries); then the last message.
struct Watcher {
    account_id: AccountId,
    cursor: WatchCursor,
    ends_at: tokio::time::Instant,
    long_poll: bool,
    stopping: Option<watch::Receiver<bool>>,
}

/// Resolves once the server is stopping (see [`PaymentApi::with_shutdown`]);
/// never without a shutdown signal.
async fn stopped(stopping: &mut Option<watch::Receiver<bool>>) {
    match stopping {
        // Err: the sender is gone, so is the server.
        Some(rx) => drop(rx.wait_for(|&stop| stop).await),
        None => std::future::pending().await,
    }
}

impl Watcher {
    async fn run(
        mut self,
        ledger: &Ledger,
        tx: &mpsc::Sender<Result<pb::WatchAccountResponse, Status>>,
    ) -> Result<(), ServiceError> {
        let mut pause = WATCH_POLL_PAUSE_MIN;
        loop {
            let polled = self.cursor.poll(ledger).await?;
            let found = !polled.entries.is_empty();
            for (entry, position) in polled.entries {
                let message = watch_message(&self.account_id, entry, position);
                if tx.send(Ok(message)).await.is_err() {
                    return Ok(()); // The caller hung up.
                }
            }
            let now = tokio::time::Instant::now();
            if (self.long_poll && found) || now >= self.ends_at {
                break;
            }
            if polled.more {
                continue;
            }
            pause = if found {
                WATCH_POLL_PAUSE_MIN
            } else {
                (pause * 2).min(WATCH_POLL_PAUSE_MAX)
            };
            tokio::select! {
                () = tokio::time::sleep_until((now + pause).min(self.ends_at)) => {}
                () = tx.closed() => return Ok(()),
                () = stopped(&mut self.stopping) => break,
            }
        }
        let last = pb::WatchAccountResponse {
            resume_token: self.token(self.cursor.position()),
            ..Default::default()
        };
        // The caller may be gone already; then there is nobody to tell.
        let _ = tx.send(Ok(last)).await;
        Ok(())
    }

    fn token(&self, next: Vec<u64>) -> String {
        WatchToken {
            account_id: self.account_id.clone(),
            next,
        }
        .encode()
    }
}

/// One watched entry, with the resume token right after it.
fn watch_message(
    account_id: &AccountId,
    entry: ledger::Entry,
    next: Vec<u64>,
) -> pb::WatchAccountResponse {
    let resume_token = WatchToken {
        account_id: account_id.clone(),
        next,
    }
    .encode();
    let entry = entry_message(account_id, entry, None);
    pb::WatchAccountResponse {
        transaction: entry.transaction,
        direction: entry.direction,
        balance_after: entry.balance_after,
        resume_token,
        sequence: entry.sequence,
        shard: entry.shard,
    }
}
