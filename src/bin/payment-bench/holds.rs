//! The hold-capture scenario's phases on fresh accounts: `authorize` places
//! --payments holds (sender n mod accounts, recipient the next account);
//! `capture` captures the even ones, alternately in full and in part;
//! `void` voids the odd ones; `refund` refunds half of each capture. Each
//! call refers to its hold by (sender, idempotency key), as a client that
//! kept only its key would.

use crate::measure::{Meters, Outcome};
use crate::phases::{Runner, authorized, status_outcome};
use crate::report::Phase;
use crate::run::Bench;
use crate::workload::{Workload, captured_amount, hold_amount, hold_parties, refunded_amount};
use crate::{BoxError, Transport};
use payment::pb::{self, payment_service_client::PaymentServiceClient};
use std::sync::Arc;
use tonic::metadata::AsciiMetadataValue;

/// What every call of the hold phases needs.
#[derive(Clone)]
struct Holds<T> {
    clients: Arc<Vec<PaymentServiceClient<T>>>,
    token: AsciiMetadataValue,
    ids: Arc<Vec<String>>,
    /// The run's idempotency key prefix: hold n is `<key>-h<n>`, the refund
    /// of capture m `<key>-r<m>`.
    key: Arc<String>,
}

impl<T: Clone> Holds<T> {
    fn client(&self, caller: u32) -> PaymentServiceClient<T> {
        self.clients[caller as usize % self.clients.len()].clone()
    }

    /// (sender, recipient) of the `n`-th hold.
    fn parties(&self, n: u32) -> (usize, usize) {
        hold_parties(n, self.ids.len() as u32)
    }

    /// The `n`-th hold, by (sender, idempotency key).
    fn by_key(&self, n: u32) -> Option<pb::PaymentRef> {
        Some(pb::PaymentRef {
            sender_id: self.ids[self.parties(n).0].clone(),
            idempotency_key: format!("{}-h{n}", self.key),
            ..Default::default()
        })
    }
}

/// The four hold phases, in order: authorize, capture, void, refund.
pub async fn hold_phases<'a, T, M>(
    bench: &Bench,
    clients: &Arc<Vec<PaymentServiceClient<T>>>,
    workload: &Workload,
    tag: &str,
    runner: &Runner<'_, M>,
) -> Result<Vec<Phase>, BoxError>
where
    T: Transport,
    M: Fn() -> Meters<'a>,
{
    let holds = Holds {
        clients: clients.clone(),
        token: bench.token.clone(),
        ids: workload.ids.clone(),
        key: Arc::new(format!("{}-{tag}", bench.run_id)),
    };
    let count = bench.args.payments;
    let mut phases = Vec::new();
    phases.push(authorize_phase(&holds, runner, count).await);
    phases.push(capture_phase(&holds, runner, count.div_ceil(2)).await);
    phases.push(void_phase(&holds, runner, count / 2).await);
    phases.push(refund_phase(&holds, runner, count.div_ceil(2)).await);
    Ok(phases)
}

/// Places holds 0..`calls`.
async fn authorize_phase<'a, T, M>(holds: &Holds<T>, runner: &Runner<'_, M>, calls: u32) -> Phase
where
    T: Transport,
    M: Fn() -> Meters<'a>,
{
    let holds = holds.clone();
    let authorize = move |caller: u32, _round: u32, n: u32| {
        let (mut client, token) = (holds.client(caller), holds.token.clone());
        let (sender, recipient) = holds.parties(n);
        let request = pb::AuthorizePaymentRequest {
            idempotency_key: format!("{}-h{n}", holds.key),
            sender_id: holds.ids[sender].clone(),
            recipient_id: holds.ids[recipient].clone(),
            amount: hold_amount(n),
            currency: "EUR".into(),
            memo: String::new(),
            expires_in_seconds: 3600,
        };
        async move {
            match client.authorize_payment(authorized(request, &token)).await {
                Ok(_) => Outcome::Ok(hold_amount(n)),
                Err(status) => status_outcome(status),
            }
        }
    };
    runner.run("authorize", calls, authorize).await
}

/// Captures hold 2m for m in 0..`calls`: in full for even m, in part for
/// odd m, and checks what each capture moved.
async fn capture_phase<'a, T, M>(holds: &Holds<T>, runner: &Runner<'_, M>, calls: u32) -> Phase
where
    T: Transport,
    M: Fn() -> Meters<'a>,
{
    let holds = holds.clone();
    let capture = move |caller: u32, _round: u32, m: u32| {
        let (mut client, token) = (holds.client(caller), holds.token.clone());
        let request = pb::CaptureHoldRequest {
            hold: holds.by_key(2 * m),
            amount: if m.is_multiple_of(2) {
                0
            } else {
                captured_amount(m)
            },
        };
        async move {
            match client.capture_hold(authorized(request, &token)).await {
                Ok(reply) => {
                    let moved = reply.into_inner().transaction.map_or(0, |t| t.amount);
                    if moved == captured_amount(m) {
                        Outcome::Ok(moved)
                    } else {
                        Outcome::Other(format!(
                            "capture {m} moved {moved}, not {}",
                            captured_amount(m)
                        ))
                    }
                }
                Err(status) => status_outcome(status),
            }
        }
    };
    runner.run("capture", calls, capture).await
}

/// Voids hold 2m + 1 for m in 0..`calls`.
async fn void_phase<'a, T, M>(holds: &Holds<T>, runner: &Runner<'_, M>, calls: u32) -> Phase
where
    T: Transport,
    M: Fn() -> Meters<'a>,
{
    let holds = holds.clone();
    let void = move |caller: u32, _round: u32, m: u32| {
        let (mut client, token) = (holds.client(caller), holds.token.clone());
        let request = pb::VoidHoldRequest {
            hold: holds.by_key(2 * m + 1),
        };
        async move {
            match client.void_hold(authorized(request, &token)).await {
                Ok(_) => Outcome::Ok(0),
                Err(status) => status_outcome(status),
            }
        }
    };
    runner.run("void", calls, void).await
}

/// Refunds half of capture m (of hold 2m) for m in 0..`calls`.
async fn refund_phase<'a, T, M>(holds: &Holds<T>, runner: &Runner<'_, M>, calls: u32) -> Phase
where
    T: Transport,
    M: Fn() -> Meters<'a>,
{
    let holds = holds.clone();
    let refund = move |caller: u32, _round: u32, m: u32| {
        let (mut client, token) = (holds.client(caller), holds.token.clone());
        let amount = refunded_amount(m);
        let request = pb::RefundPaymentRequest {
            idempotency_key: format!("{}-r{m}", holds.key),
            payment: holds.by_key(2 * m),
            amount,
            memo: String::new(),
        };
        async move {
            match client.refund_payment(authorized(request, &token)).await {
                Ok(_) => Outcome::Ok(amount),
                Err(status) => status_outcome(status),
            }
        }
    };
    runner.run("refund", calls, refund).await
}
