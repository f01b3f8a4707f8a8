//! GetTransactionHistory: a page of an account's history, merged over its
//! shards, streamed as it is read.

use super::convert::entry_message;
use super::deadline::{deadline, until};
use super::{HistoryStream, PaymentApi};
use crate::auth::Caller;
use crate::domain::{HistoryPage, InvalidField};
use crate::error::{CutOff, ServiceError};
use crate::ledger::{HistoryCursor, Ledger};
use crate::pb;
use crate::telemetry::{current_meter, metered};
use futures_util::StreamExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Entries buffered between the DynamoDB reader and a slow stream reader.
pub(super) const HISTORY_BUFFER_ENTRIES: usize = 128;

impl PaymentApi {
    pub(super) async fn get_transaction_history_call(
        &self,
        caller: &Caller,
        request: Request<pb::GetTransactionHistoryRequest>,
    ) -> Result<Response<HistoryStream>, ServiceError> {
        let deadline = deadline(&request);
        let r = request.into_inner();
        let page = HistoryPage::parse(&r.account_id, r.page_size, &r.page_token)?;
        // Errors found before the stream starts (NOT_FOUND, PERMISSION_DENIED)
        // come as a plain error response, not as a trailer after zero messages.
        let account = until(
            deadline,
            CutOff::Read,
            self.readable_account(caller, &page.account_id),
        )
        .await?;
        let cursors: Option<Vec<u64>> = page.before_sequence.map(|first| {
            std::iter::once(first)
                .chain(page.other_shards.iter().copied())
                .collect()
        });
        let cursor = HistoryCursor::new(&account, cursors.as_deref()).ok_or_else(|| {
            InvalidField::new(
                "page_token",
                "does not fit the shards of this account; start with an empty page_token",
            )
        })?;
        let (tx, mut rx) = mpsc::channel(HISTORY_BUFFER_ENTRIES);
        let ledger = self.ledger.clone();
        // The reader works for this call: its requests count in its meter.
        tokio::spawn(metered(current_meter(), async move {
            let send_all = stream_history(&ledger, &page, cursor, &tx);
            if let Err(err) = until(deadline, CutOff::Read, send_all).await {
                let status = Status::from(err);
                tracing::warn!(code = ?status.code(), message = status.message(), "history stream failed midway");
                // The reader may be gone already; then there is nobody to tell.
                let _ = tx.send(Err(status)).await;
            }
        }));
        // The reply's headers wait for the first entry (or the end, or an
        // error): sent with it, they leave in the same write instead of one
        // of their own ahead of the Query.
        let first = rx.recv().await;
        let rest = ReceiverStream::new(rx);
        Ok(Response::new(Box::pin(
            futures_util::stream::iter(first).chain(rest),
        )))
    }
}

async fn stream_history(
    ledger: &Ledger,
    page: &HistoryPage,
    mut cursor: HistoryCursor,
    tx: &mpsc::Sender<Result<pb::GetTransactionHistoryResponse, Status>>,
) -> Result<(), ServiceError> {
    let mut remaining = page.page_size;
    while remaining > 0 {
        let Some(entry) = cursor.next(ledger, remaining).await? else {
            break;
        };
        remaining -= 1;
        let message = entry_message(&page.account_id, entry, cursor.position());
        if tx.send(Ok(message)).await.is_err() {
            return Ok(()); // The caller hung up.
        }
    }
    Ok(())
}
