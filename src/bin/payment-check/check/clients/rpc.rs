//! One call as its RPC: the request sent with the token under its
//! deadline, the reply read into an [`Answer`], and the call recorded.

use super::record::{Answer, Call, HoldView, PageEntry, Reply, Request, Tx};
use super::{CLIENT_GRACE, PAGE_SIZE_MAX, Shared};
use payment::pb::{self, payment_service_client::PaymentServiceClient};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tonic::Status;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

/// Makes `request` on instance `instance` with a deadline, and records it.
pub async fn call_instance(
    shared: &Shared,
    client: usize,
    instance: usize,
    op: usize,
    deadline_ms: u64,
    request: Request,
) -> Answer {
    let recorder = &shared.recorder;
    let id = recorder.next_call.fetch_add(1, Ordering::SeqCst);
    let invoked_us = recorder.now_us();
    let deadline = Duration::from_millis(deadline_ms);
    let mut rpc = Rpc {
        grpc: PaymentServiceClient::new(shared.channels[instance].clone()),
        token: &shared.token,
        deadline,
    };
    let answer = match tokio::time::timeout(deadline + CLIENT_GRACE, rpc.send(&request)).await {
        Ok(answer) => answer,
        Err(_) => Answer::client_timeout(),
    };
    let completed_us = recorder.now_us();
    shared.saw_shards(&request, &answer);
    recorder.push(Call {
        id,
        op,
        client,
        instance,
        invoked_us,
        completed_us,
        deadline_ms,
        request,
        answer: answer.clone(),
    });
    answer
}

/// One call's client, token and deadline.
struct Rpc<'a> {
    grpc: PaymentServiceClient<Channel>,
    token: &'a AsciiMetadataValue,
    deadline: Duration,
}

impl Rpc<'_> {
    /// Sends `request` and reads what it was answered.
    async fn send(&mut self, request: &Request) -> Answer {
        match self.reply(request.clone()).await {
            Ok(reply) => Answer::ok(reply),
            Err(status) => Answer::of_status(&status),
        }
    }

    /// `message` with the token and the deadline.
    fn authorized<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert("authorization", self.token.clone());
        request.set_timeout(self.deadline);
        request
    }

    /// The request as its RPC method, one each.
    async fn reply(&mut self, request: Request) -> Result<Reply, Status> {
        match request {
            Request::Pay {
                key,
                sender,
                recipient,
                amount,
                currency,
                memo,
            } => {
                self.make_payment(pb::MakePaymentRequest {
                    idempotency_key: key,
                    sender_id: sender,
                    recipient_id: recipient,
                    amount,
                    currency,
                    memo,
                })
                .await
            }
            Request::Authorize {
                key,
                sender,
                recipient,
                amount,
                currency,
                memo,
                expires_in_s,
            } => {
                self.authorize_payment(pb::AuthorizePaymentRequest {
                    idempotency_key: key,
                    sender_id: sender,
                    recipient_id: recipient,
                    amount,
                    currency,
                    memo,
                    expires_in_seconds: expires_in_s,
                })
                .await
            }
            Request::Capture {
                sender,
                key,
                amount,
            } => self.capture_hold(&sender, &key, amount).await,
            Request::Void { sender, key } => self.void_hold(&sender, &key).await,
            Request::Refund {
                key,
                payment_sender,
                payment_key,
                amount,
                memo,
                ..
            } => {
                let payment = by_key(&payment_sender, &payment_key);
                self.refund_payment(key, payment, amount, memo).await
            }
            Request::Lookup {
                sender,
                key,
                finalize,
            } => self.get_payment(&sender, &key, finalize).await,
            Request::Balance { account } => self.get_account_balance(account).await,
            Request::History {
                account,
                page_size,
                page_token,
                ..
            } => {
                self.get_transaction_history(account, page_size, page_token)
                    .await
            }
            Request::SetShards { account, shards } => {
                self.set_balance_shards(account, shards).await
            }
        }
    }

    async fn make_payment(&mut self, message: pb::MakePaymentRequest) -> Result<Reply, Status> {
        let request = self.authorized(message);
        let r = self.grpc.make_payment(request).await?.into_inner();
        Ok(Reply::Transfer {
            tx: tx(r.transaction),
            replayed: r.replayed,
            refunded_total: 0,
        })
    }

    async fn authorize_payment(
        &mut self,
        message: pb::AuthorizePaymentRequest,
    ) -> Result<Reply, Status> {
        let request = self.authorized(message);
        let r = self.grpc.authorize_payment(request).await?.into_inner();
        Ok(Reply::Hold {
            hold: hold(r.hold),
            capture: None,
            replayed: r.replayed,
        })
    }

    async fn capture_hold(
        &mut self,
        sender: &str,
        key: &str,
        amount: i64,
    ) -> Result<Reply, Status> {
        let request = self.authorized(pb::CaptureHoldRequest {
            hold: by_key(sender, key),
            amount,
        });
        let r = self.grpc.capture_hold(request).await?.into_inner();
        Ok(Reply::Hold {
            hold: hold(r.hold),
            capture: Some(tx(r.transaction)),
            replayed: r.replayed,
        })
    }

    async fn void_hold(&mut self, sender: &str, key: &str) -> Result<Reply, Status> {
        let request = self.authorized(pb::VoidHoldRequest {
            hold: by_key(sender, key),
        });
        let r = self.grpc.void_hold(request).await?.into_inner();
        Ok(Reply::Hold {
            hold: hold(r.hold),
            capture: None,
            replayed: r.replayed,
        })
    }

    async fn refund_payment(
        &mut self,
        key: String,
        payment: Option<pb::PaymentRef>,
        amount: i64,
        memo: String,
    ) -> Result<Reply, Status> {
        let request = self.authorized(pb::RefundPaymentRequest {
            idempotency_key: key,
            payment,
            amount,
            memo,
        });
        let r = self.grpc.refund_payment(request).await?.into_inner();
        Ok(Reply::Transfer {
            tx: tx(r.transaction),
            replayed: r.replayed,
            refunded_total: r.refunded_total,
        })
    }

    async fn get_payment(
        &mut self,
        sender: &str,
        key: &str,
        finalize: bool,
    ) -> Result<Reply, Status> {
        let request = self.authorized(pb::GetPaymentRequest {
            payment: by_key(sender, key),
            finalize,
        });
        let r = self.grpc.get_payment(request).await?.into_inner();
        Ok(Reply::Found {
            tx: r.transaction.is_some().then(|| tx(r.transaction)),
            hold: r.hold.is_some().then(|| hold(r.hold)),
            refunded_total: r.refunded_total,
        })
    }

    async fn get_account_balance(&mut self, account: String) -> Result<Reply, Status> {
        let request = self.authorized(pb::GetAccountBalanceRequest {
            account_id: account,
        });
        let r = self.grpc.get_account_balance(request).await?.into_inner();
        let a = r.account.unwrap_or_default();
        Ok(Reply::Balance {
            balance: a.balance,
            held: a.held,
            available: a.available,
            shards: u32::try_from(a.balance_shards).unwrap_or(0),
        })
    }

    async fn get_transaction_history(
        &mut self,
        account: String,
        page_size: i32,
        page_token: String,
    ) -> Result<Reply, Status> {
        let request = self.authorized(pb::GetTransactionHistoryRequest {
            account_id: account,
            page_size,
            page_token,
        });
        let mut stream = self
            .grpc
            .get_transaction_history(request)
            .await?
            .into_inner();
        let (mut entries, mut tokens) = (Vec::new(), Vec::new());
        while let Some(e) = stream.message().await? {
            entries.push(PageEntry {
                tx: tx(e.transaction),
                direction: e.direction,
                balance_after: e.balance_after,
                sequence: u64::try_from(e.sequence).unwrap_or(0),
                shard: u32::try_from(e.shard).unwrap_or(0),
                has_token: !e.next_page_token.is_empty(),
            });
            tokens.push(e.next_page_token);
            // More than asked for is an anomaly the checks report;
            // reading stops at a bound.
            if entries.len() > 2 * PAGE_SIZE_MAX as usize {
                break;
            }
        }
        Ok(Reply::Page { entries, tokens })
    }

    async fn set_balance_shards(&mut self, account: String, shards: u32) -> Result<Reply, Status> {
        let request = self.authorized(pb::SetBalanceShardsRequest {
            account_id: account,
            balance_shards: i32::try_from(shards).unwrap_or(i32::MAX),
        });
        let r = self.grpc.set_balance_shards(request).await?.into_inner();
        let a = r.account.unwrap_or_default();
        Ok(Reply::Shards {
            shards: u32::try_from(a.balance_shards).unwrap_or(0),
            balance: a.balance,
            raised: r.raised,
        })
    }
}

fn ms(timestamp: &Option<prost_types::Timestamp>) -> i64 {
    timestamp
        .as_ref()
        .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

fn tx(t: Option<pb::Transaction>) -> Tx {
    let t = t.unwrap_or_default();
    Tx {
        created_at_ms: ms(&t.created_at),
        id: t.transaction_id,
        sender: t.sender_id,
        recipient: t.recipient_id,
        amount: t.amount,
        currency: t.currency,
        kind: t.kind,
        refund_of: t.refund_of,
    }
}

fn hold(h: Option<pb::Hold>) -> HoldView {
    let h = h.unwrap_or_default();
    HoldView {
        expires_at_ms: ms(&h.expires_at),
        id: h.hold_id,
        sender: h.sender_id,
        recipient: h.recipient_id,
        amount: h.amount,
        currency: h.currency,
        state: h.state,
        captured: h.captured_amount,
    }
}

fn by_key(sender: &str, key: &str) -> Option<pb::PaymentRef> {
    Some(pb::PaymentRef {
        transaction_id: String::new(),
        sender_id: sender.to_owned(),
        idempotency_key: key.to_owned(),
    })
}
