//! A client of the workload: its seeded choice of operations and targets,
//! and the contract's retry rules (see the module above); and the admin,
//! who reshards at its points of the run.

use super::record::{Answer, Class, Fate, KeyedOp, Reply, Request};
use super::rpc::call_instance;
use super::{
    ADMIN_ATTEMPTS_MAX, ADMIN_PAUSE_MS, AccountSpec, FINALIZE_ATTEMPTS_MAX, KEYED_ATTEMPTS_MAX,
    PAGE_SIZE_MAX, RETRY_PAUSE_MS, Reshard, Shared,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// One client's memory of what it did, to pick targets from (only its
/// own, so that its choices depend on its seed and its answers alone).
#[derive(Default)]
struct Memory {
    /// Holds placed: (sender, key, amount); the hold may not exist.
    holds: Vec<(String, String, i64)>,
    /// Payments and captures answered OK: (sender, key, recipient, amount).
    paid: Vec<(String, String, String, i64)>,
    /// Every key used: (paying account, key).
    keys: Vec<(String, String)>,
    /// The AuthorizePayment calls whose hold committed, as asked.
    placed: Vec<Request>,
}

struct Client {
    index: usize,
    shared: Arc<Shared>,
    rng: StdRng,
    memory: Memory,
    ops: usize,
}

/// Runs one client's share of the operations.
pub async fn run_client(shared: Arc<Shared>, index: usize) {
    let workload = &shared.workload;
    let share = workload.operations / workload.clients
        + usize::from(index < workload.operations % workload.clients);
    let seed = workload.seed ^ (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut client = Client::new(&shared, index, seed);
    for _ in 0..share {
        client.one().await;
        shared.recorder.done.fetch_add(1, Ordering::SeqCst);
    }
}

/// The admin's share of the workload: each of [`Workload::reshards`](super::Workload::reshards) once
/// its point of the run is reached (by the operations done, like the kills:
/// the same point on a slow machine and a fast one), SetBalanceShards under
/// the same deadlines, instances and faults as every call, retried with the
/// same arguments after an ambiguous answer. Its calls are recorded as
/// client `index` (its operations do not count as done). Returns when the
/// last one is answered (every point is reached before the clients are
/// done).
pub async fn run_admin(shared: Arc<Shared>, index: usize) {
    let workload = &shared.workload;
    let seed = workload.seed ^ (index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut client = Client::new(&shared, index, seed);
    for reshard in workload.reshards.clone() {
        let due = reshard.at_done.min(workload.operations);
        while shared.recorder.done() < due {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        client.reshard(&reshard).await;
    }
}

impl Client {
    fn new(shared: &Arc<Shared>, index: usize, seed: u64) -> Self {
        Client {
            index,
            shared: shared.clone(),
            rng: StdRng::seed_from_u64(seed),
            memory: Memory::default(),
            ops: 0,
        }
    }

    fn accounts(&self) -> &[AccountSpec] {
        &self.shared.workload.accounts
    }

    /// Whether the account has several balance shards, as far as the
    /// answers so far showed (an ordinary account resharded during the run
    /// is one).
    fn sharded(&self, account: &AccountSpec) -> bool {
        self.shared.shards_of(account) > 1
    }

    /// Two distinct accounts of one currency: a sender and a recipient.
    /// Ordinary senders mostly; a sharded account sends now and then.
    fn parties(&mut self) -> (AccountSpec, AccountSpec) {
        let accounts = self.accounts().to_vec();
        loop {
            let sender = &accounts[self.rng.random_range(0..accounts.len())];
            if self.sharded(sender) && !self.rng.random_ratio(1, 4) {
                continue;
            }
            let same: Vec<&AccountSpec> = accounts
                .iter()
                .filter(|a| a.currency == sender.currency && a.id != sender.id)
                .collect();
            if same.is_empty() {
                continue;
            }
            // Into a sharded account about one time in three.
            let sharded: Vec<&&AccountSpec> = same.iter().filter(|a| self.sharded(a)).collect();
            let recipient = if !sharded.is_empty() && self.rng.random_ratio(1, 3) {
                (*sharded[self.rng.random_range(0..sharded.len())]).clone()
            } else {
                same[self.rng.random_range(0..same.len())].clone()
            };
            return (sender.clone(), recipient);
        }
    }

    fn random_account(&mut self) -> String {
        let accounts = self.shared.workload.accounts.clone();
        accounts[self.rng.random_range(0..accounts.len())]
            .id
            .clone()
    }

    fn new_key(&mut self) -> String {
        self.ops += 1;
        format!("c{}-{}", self.index, self.ops)
    }

    fn amount(&mut self) -> i64 {
        self.rng.random_range(1..=self.shared.workload.amount_max)
    }

    async fn one(&mut self) {
        let pick = self.rng.random_range(0..100u32);
        match pick {
            0..=29 => self.pay().await,
            30..=41 => self.authorize().await,
            42..=51 => self.capture_or_void(true).await,
            52..=57 => self.capture_or_void(false).await,
            58..=67 => self.refund().await,
            68..=74 => self.lookup().await,
            75..=87 => self.balance().await,
            _ => self.history().await,
        }
    }

    async fn pay(&mut self) {
        if !self.memory.placed.is_empty() && self.rng.random_ratio(1, 12) {
            return self.reuse_hold_key(false).await;
        }
        let (sender, recipient) = self.parties();
        let key = self.new_key();
        let amount = self.amount();
        let request = Request::Pay {
            key: key.clone(),
            sender: sender.id.clone(),
            recipient: recipient.id.clone(),
            amount,
            currency: sender.currency.clone(),
            memo: format!("pay {key}"),
        };
        let fate = self.keyed(request, false).await;
        self.memory.keys.push((sender.id.clone(), key.clone()));
        if fate == Fate::Committed {
            self.memory
                .paid
                .push((sender.id, key, recipient.id, amount));
        }
    }

    async fn authorize(&mut self) {
        if !self.memory.placed.is_empty() && self.rng.random_ratio(1, 8) {
            return self.reuse_hold_key(true).await;
        }
        let (sender, recipient) = self.parties();
        let key = self.new_key();
        let amount = self.amount();
        let (low, high) = self.shared.workload.hold_expiry_s;
        let request = Request::Authorize {
            key: key.clone(),
            sender: sender.id.clone(),
            recipient: recipient.id.clone(),
            amount,
            currency: sender.currency.clone(),
            memo: format!("hold {key}"),
            expires_in_s: self.rng.random_range(low..=high),
        };
        let fate = self.keyed(request.clone(), false).await;
        self.memory.keys.push((sender.id.clone(), key.clone()));
        if fate == Fate::Committed {
            self.memory.holds.push((sender.id, key, amount));
            self.memory.placed.push(request);
        }
    }

    /// Another call under the key of a committed hold, with the hold's own
    /// parties, amount and memo: a payment (`as_hold` false) or a hold with
    /// another expiry. Whatever became of the hold since, the key holds it,
    /// so the answer must be ALREADY_EXISTS (the checks see to it).
    async fn reuse_hold_key(&mut self, as_hold: bool) {
        let placed = self.memory.placed[self.rng.random_range(0..self.memory.placed.len())].clone();
        let Request::Authorize {
            key,
            sender,
            recipient,
            amount,
            currency,
            memo,
            expires_in_s,
        } = placed
        else {
            return;
        };
        let request = if as_hold {
            let (low, high) = self.shared.workload.hold_expiry_s;
            let mut other = self.rng.random_range(low..=high);
            if other == expires_in_s {
                other = if other < high { other + 1 } else { other - 1 };
            }
            Request::Authorize {
                key,
                sender,
                recipient,
                amount,
                currency,
                memo,
                expires_in_s: other,
            }
        } else {
            Request::Pay {
                key,
                sender,
                recipient,
                amount,
                currency,
                memo,
            }
        };
        self.keyed(request, true).await;
    }

    async fn capture_or_void(&mut self, capture: bool) {
        if self.memory.holds.is_empty() {
            return self.pay().await;
        }
        let (sender, key, amount) = self
            .memory
            .holds
            .swap_remove(self.rng.random_range(0..self.memory.holds.len()));
        let request = if capture {
            let amount = if self.rng.random_bool(0.5) {
                0
            } else {
                self.rng.random_range(1..=amount)
            };
            Request::Capture {
                sender: sender.clone(),
                key: key.clone(),
                amount,
            }
        } else {
            Request::Void {
                sender: sender.clone(),
                key: key.clone(),
            }
        };
        let op = self.shared.recorder.new_op();
        let mut last = None;
        for _ in 0..KEYED_ATTEMPTS_MAX {
            let answer = self.call(op, request.clone()).await;
            let class = answer.class;
            last = Some(answer);
            if class != Class::Ambiguous {
                break;
            }
            self.pause().await;
        }
        if let Some(Answer {
            reply:
                Some(Reply::Hold {
                    hold,
                    capture: Some(_),
                    ..
                }),
            ..
        }) = last
            && capture
        {
            self.memory
                .paid
                .push((sender, key, hold.recipient, hold.captured));
        }
    }

    async fn refund(&mut self) {
        if self.memory.paid.is_empty() {
            return self.pay().await;
        }
        let (payment_sender, payment_key, payer, amount) =
            self.memory.paid[self.rng.random_range(0..self.memory.paid.len())].clone();
        let key = self.new_key();
        let amount = if self.rng.random_bool(0.3) {
            0
        } else {
            self.rng.random_range(1..=amount.max(1))
        };
        let request = Request::Refund {
            key: key.clone(),
            payer: payer.clone(),
            payment_sender,
            payment_key,
            amount,
            memo: format!("refund {key}"),
        };
        self.keyed(request, false).await;
        self.memory.keys.push((payer, key));
    }

    async fn lookup(&mut self) {
        if self.memory.keys.is_empty() {
            return self.balance().await;
        }
        let (sender, key) =
            self.memory.keys[self.rng.random_range(0..self.memory.keys.len())].clone();
        let op = self.shared.recorder.new_op();
        self.call(
            op,
            Request::Lookup {
                sender,
                key,
                finalize: false,
            },
        )
        .await;
    }

    async fn balance(&mut self) {
        let account = self.random_account();
        let op = self.shared.recorder.new_op();
        self.call(op, Request::Balance { account }).await;
    }

    async fn history(&mut self) {
        let account = self.random_account();
        let op = self.shared.recorder.new_op();
        let page_size = self.rng.random_range(1..=PAGE_SIZE_MAX);
        let first = Request::History {
            account: account.clone(),
            page_size,
            page_token: String::new(),
            after: None,
        };
        let answer = self.call(op, first).await;
        // Now and then, the next page from the last entry's token.
        if let Some(Reply::Page { entries, tokens }) = answer.reply
            && let (Some(last), Some(token)) = (entries.last(), tokens.last())
            && !token.is_empty()
            && self.rng.random_bool(0.5)
        {
            let next = Request::History {
                account,
                page_size: self.rng.random_range(1..=PAGE_SIZE_MAX),
                page_token: token.clone(),
                after: Some((last.shard, last.sequence)),
            };
            self.call(op, next).await;
        }
    }

    /// One SetBalanceShards operation: the same call again after an
    /// ambiguous answer (it is idempotent), until an OK or a refusal or
    /// [`ADMIN_ATTEMPTS_MAX`] calls.
    async fn reshard(&mut self, reshard: &Reshard) {
        let op = self.shared.recorder.new_op();
        let request = Request::SetShards {
            account: reshard.account.clone(),
            shards: reshard.shards,
        };
        for _ in 0..ADMIN_ATTEMPTS_MAX {
            let answer = self.call(op, request.clone()).await;
            if answer.class != Class::Ambiguous {
                break;
            }
            self.pause().await;
            tokio::time::sleep(Duration::from_millis(ADMIN_PAUSE_MS)).await;
        }
    }

    async fn pause(&mut self) {
        let ms = self.rng.random_range(RETRY_PAUSE_MS.0..=RETRY_PAUSE_MS.1);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// A keyed call under the retry rules; records its fate. `reuse`: the
    /// key is a committed hold's, and this is another call.
    async fn keyed(&mut self, request: Request, reuse: bool) -> Fate {
        let (sender, key) = request
            .key()
            .map(|(s, k)| (s.to_owned(), k.to_owned()))
            .unwrap_or_default();
        let op = self.shared.recorder.new_op();
        let mut ambiguous = false;
        let mut fate = Fate::Open;
        // The contract allows either after an ambiguous answer: the same
        // call again, or the final lookup at once. Some operations go
        // straight to the lookup, which is where a late write would bite.
        let attempts = self.rng.random_range(1..=KEYED_ATTEMPTS_MAX);
        for _ in 0..attempts {
            let answer = self.call(op, request.clone()).await;
            match answer.class {
                Class::Ok => {
                    fate = Fate::Committed;
                    break;
                }
                Class::Refused if !ambiguous => {
                    fate = Fate::Refused;
                    break;
                }
                // A refusal after an ambiguous attempt says nothing of that
                // attempt's write: only the final lookup tells.
                Class::Refused => break,
                Class::Ambiguous => ambiguous = true,
            }
            self.pause().await;
        }
        if fate == Fate::Open {
            fate = self.finalize(op, &sender, &key).await;
        }
        self.shared.recorder.push_keyed(KeyedOp {
            op,
            sender,
            key,
            fate: fate.clone(),
            reuse,
        });
        fate
    }

    /// GetPayment with finalize until a definite answer.
    async fn finalize(&mut self, op: usize, sender: &str, key: &str) -> Fate {
        for _ in 0..FINALIZE_ATTEMPTS_MAX {
            let request = Request::Lookup {
                sender: sender.to_owned(),
                key: key.to_owned(),
                finalize: true,
            };
            let answer = self.call(op, request).await;
            if let Some(fate) = fate_of_final_lookup(&answer) {
                return fate;
            }
            self.pause().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Fate::Open
    }

    /// One call to a random instance, recorded.
    async fn call(&mut self, op: usize, request: Request) -> Answer {
        let instance = self.rng.random_range(0..self.shared.channels.len());
        let (low, high) = self.shared.workload.deadline_ms;
        let deadline_ms = self.rng.random_range(low..=high);
        call_instance(&self.shared, self.index, instance, op, deadline_ms, request).await
    }
}

/// The fate a GetPayment with finalize tells, or None if it leaves it open.
pub fn fate_of_final_lookup(answer: &Answer) -> Option<Fate> {
    match answer.class {
        Class::Ok => Some(Fate::Committed),
        Class::Refused if answer.code == "NotFound" && answer.reason == "KEY_FENCED" => {
            Some(Fate::Fenced)
        }
        Class::Refused if answer.code == "NotFound" => Some(Fate::NotFoundUnfenced),
        _ => None,
    }
}
