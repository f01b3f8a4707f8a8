//! The checks on a small history by hand: account `a` opens ordinary,
//! is paid by `b`, is resharded to 4 by SetBalanceShards, and is paid
//! twice more (once on its new shard 2, once on shard 0).
use super::*;
use crate::check::clients::Fate;
use crate::check::clients::record::{Answer, PageEntry, Tx};
use payment::ledger::Transaction;

fn payment(id: &str, sender: &str, recipient: &str, amount: i64, at: i64) -> Transaction {
    Transaction {
        transaction_id: id.into(),
        sender_id: sender.into(),
        recipient_id: recipient.into(),
        amount_minor: amount,
        currency: "EUR".into(),
        memo: format!("pay {id}"),
        created_at_ms: at,
        kind: if sender.is_empty() {
            TransactionKind::Opening
        } else {
            TransactionKind::Payment
        },
        refund_of: String::new(),
    }
}

fn entry(p: &Transaction, direction: Direction, shard: u32, sequence: u64, after: i64) -> Entry {
    Entry {
        shard,
        sequence,
        direction,
        payment: p.clone(),
        balance_after_minor: after,
    }
}

fn spec(id: &str) -> AccountSpec {
    AccountSpec {
        id: id.into(),
        currency: "EUR".into(),
        opening_shards: 1,
        opening_minor: 1_000,
    }
}

fn truth() -> Truth {
    let open_a = payment("open-a", "", "a", 1_000, 10);
    let open_b = payment("open-b", "", "b", 1_000, 10);
    let p1 = payment("p1", "b", "a", 100, 20);
    let p2 = payment("p2", "b", "a", 50, 30);
    let p3 = payment("p3", "b", "a", 10, 40);
    let a = AccountTruth {
        spec: spec("a"),
        shards: 4,
        balance: 1_160,
        entries: vec![
            entry(&open_a, Direction::Credit, 0, 1, 1_000),
            entry(&p1, Direction::Credit, 0, 2, 1_100),
            entry(&p2, Direction::Credit, 2, 1, 1_150),
            entry(&p3, Direction::Credit, 0, 3, 1_160),
        ],
    };
    let b = AccountTruth {
        spec: spec("b"),
        shards: 1,
        balance: 840,
        entries: vec![
            entry(&open_b, Direction::Credit, 0, 1, 1_000),
            entry(&p1, Direction::Debit, 0, 2, 900),
            entry(&p2, Direction::Debit, 0, 3, 850),
            entry(&p3, Direction::Debit, 0, 4, 840),
        ],
    };
    let mut keys = HashMap::new();
    for (key, p) in [("k1", p1), ("k2", p2), ("k3", p3)] {
        keys.insert(
            ("b".to_owned(), key.to_owned()),
            Some(Found::Transfer {
                idempotency_key: key.into(),
                payment: p,
                refunded_minor: 0,
            }),
        );
    }
    Truth {
        accounts: BTreeMap::from([("a".to_owned(), a), ("b".to_owned(), b)]),
        keys,
    }
}

fn ok(reply: Reply) -> Answer {
    Answer::ok(reply)
}

fn call(id: usize, at: (u64, u64), request: Request, answer: Answer) -> Call {
    Call {
        id,
        op: id,
        client: 0,
        instance: 0,
        invoked_us: at.0,
        completed_us: at.1,
        deadline_ms: 1_000,
        request,
        answer,
    }
}

fn tx(p: &Transaction) -> Tx {
    Tx {
        id: p.transaction_id.clone(),
        sender: p.sender_id.clone(),
        recipient: p.recipient_id.clone(),
        amount: p.amount_minor,
        currency: p.currency.clone(),
        kind: kind_number(p.kind),
        refund_of: String::new(),
        created_at_ms: p.created_at_ms,
    }
}

/// A page of `a` as the final history shows it: the entries named by
/// their transaction ids, newest first.
fn page(truth: &Truth, ids: &[&str]) -> Reply {
    let entries = ids
        .iter()
        .map(|id| {
            let e = truth.accounts["a"]
                .entries
                .iter()
                .find(|e| e.payment.transaction_id == *id)
                .expect("entry");
            PageEntry {
                tx: tx(&e.payment),
                direction: 2,
                balance_after: e.balance_after_minor,
                sequence: e.sequence,
                shard: e.shard,
                has_token: true,
            }
        })
        .collect();
    Reply::Page {
        entries,
        tokens: ids.iter().map(|_| "t".to_owned()).collect(),
    }
}

fn history(size: i32, after: Option<(u32, u64)>) -> Request {
    Request::History {
        account: "a".into(),
        page_size: size,
        page_token: String::new(),
        after,
    }
}

fn balance(balance: i64, shards: u32) -> Reply {
    Reply::Balance {
        balance,
        held: 0,
        available: balance,
        shards,
    }
}

fn reshard(shards: u32) -> Request {
    Request::SetShards {
        account: "a".into(),
        shards,
    }
}

/// Call `id`, at `at`: `b` pays `a` `amount` under `key`, as the final
/// history has it, answered OK.
fn pay(truth: &Truth, id: usize, at: (u64, u64), key: &str, amount: i64) -> Call {
    let p = match &truth.keys[&("b".to_owned(), key.to_owned())] {
        Some(Found::Transfer { payment, .. }) => payment.clone(),
        _ => unreachable!(),
    };
    call(
        id,
        at,
        Request::Pay {
            key: key.into(),
            sender: "b".into(),
            recipient: "a".into(),
            amount,
            currency: "EUR".into(),
            memo: p.memo.clone(),
        },
        ok(Reply::Transfer {
            tx: tx(&p),
            replayed: false,
            refunded_total: 0,
        }),
    )
}

/// The run, correct: pays (k1 before the reshard, k2 and k3 after),
/// the reshard, pages and balance reads before and after it.
fn calls(truth: &Truth) -> Vec<Call> {
    let pay = |id, at, key, amount| pay(truth, id, at, key, amount);
    vec![
        pay(0, (100, 200), "k1", 100),
        call(
            1,
            (300, 400),
            reshard(4),
            ok(Reply::Shards {
                shards: 4,
                balance: 1_100,
                raised: true,
            }),
        ),
        pay(2, (500, 600), "k2", 50),
        pay(3, (700, 800), "k3", 10),
        // Before the reshard: the whole history, on shard 0.
        call(
            4,
            (250, 260),
            history(10, None),
            ok(page(truth, &["p1", "open-a"])),
        ),
        // After: the newest two, then the rest from the token.
        call(
            5,
            (900, 950),
            history(2, None),
            ok(page(truth, &["p3", "p2"])),
        ),
        call(
            6,
            (960, 990),
            history(5, Some((2, 1))),
            ok(page(truth, &["p1", "open-a"])),
        ),
        call(
            7,
            (900, 950),
            Request::Balance {
                account: "a".into(),
            },
            ok(balance(1_160, 4)),
        ),
        call(
            8,
            (250, 260),
            Request::Balance {
                account: "a".into(),
            },
            ok(balance(1_100, 1)),
        ),
        // Between k2 and k3: the newest entry is on shard 2, shard 0's
        // newest is p1 (the spec's count would have taken p2 for it).
        call(
            9,
            (650, 690),
            history(5, None),
            ok(page(truth, &["p2", "p1", "open-a"])),
        ),
        // The same count again, and fewer: unchanged, and refused.
        call(
            10,
            (1_000, 1_100),
            reshard(4),
            ok(Reply::Shards {
                shards: 4,
                balance: 1_160,
                raised: false,
            }),
        ),
        call(11, (1_000, 1_100), reshard(2), cannot_shrink()),
    ]
}

fn cannot_shrink() -> Answer {
    Answer {
        class: Class::Refused,
        code: "FailedPrecondition".into(),
        reason: "SHARDS_CANNOT_SHRINK".into(),
        message: String::new(),
        reply: None,
    }
}

fn keyed() -> Vec<KeyedOp> {
    [(0, "k1"), (2, "k2"), (3, "k3")]
        .into_iter()
        .map(|(op, key)| KeyedOp {
            op,
            sender: "b".into(),
            key: key.into(),
            fate: Fate::Committed,
            reuse: false,
        })
        .collect()
}

fn checks_of(anomalies: &[Anomaly]) -> Vec<&'static str> {
    anomalies.iter().map(|a| a.check).collect()
}

#[test]
fn a_history_with_an_account_resharded_midway_passes() {
    let truth = truth();
    let (anomalies, coverage) = check(&calls(&truth), &keyed(), &truth, Some(64));
    assert!(anomalies.is_empty(), "{anomalies:#?}");
    assert_eq!(coverage.balance_reads_checked, 4);
    assert_eq!(coverage.pages_checked, 4);
    assert_eq!(coverage.reshard_ops, 3);
    assert_eq!(
        (
            coverage.reshards_raised,
            coverage.reshards_unchanged,
            coverage.reshards_refused
        ),
        (1, 1, 1)
    );
    let resharded = &coverage.accounts_resharded;
    assert_eq!(resharded.len(), 1, "{resharded:?}");
    assert_eq!(
        (
            resharded[0].account.as_str(),
            resharded[0].opening_shards,
            resharded[0].final_shards,
            resharded[0].by
        ),
        ("a", 1, 4, "SetBalanceShards")
    );
    assert_eq!(coverage.resharded_account_reads, 6);
}

#[test]
fn a_count_nobody_asked_for_is_flagged_unless_promotion_gives_it() {
    let mut truth = truth();
    truth.accounts.get_mut("a").expect("a").shards = 8;
    let calls = calls(&truth);
    let (anomalies, _) = check(&calls, &keyed(), &truth, Some(64));
    assert_eq!(
        checks_of(&anomalies),
        ["shards_only_rise"],
        "{anomalies:#?}"
    );
    let (anomalies, coverage) = check(&calls, &keyed(), &truth, Some(8));
    assert!(anomalies.is_empty(), "{anomalies:#?}");
    assert_eq!(coverage.accounts_resharded[0].by, "promotion");
    // An account that opened sharded is never promoted (and a read
    // showing it with 1 shard is wrong too).
    truth.accounts.get_mut("a").expect("a").spec.opening_shards = 2;
    let (anomalies, _) = check(&calls, &keyed(), &truth, Some(8));
    assert!(
        anomalies.iter().all(|a| a.check == "shards_only_rise")
            && anomalies
                .iter()
                .any(|a| a.what.contains("which no SetBalanceShards")),
        "{anomalies:#?}"
    );
}

#[test]
fn wrong_reshard_answers_are_flagged() {
    let truth = truth();
    // A count that went down in real time.
    let mut bad = calls(&truth);
    bad[7] = call(
        7,
        (900, 950),
        Request::Balance {
            account: "a".into(),
        },
        ok(balance(1_160, 1)),
    );
    let (anomalies, _) = check(&bad, &keyed(), &truth, Some(64));
    assert_eq!(
        checks_of(&anomalies),
        ["shards_only_rise"],
        "{anomalies:#?}"
    );
    // SHARDS_CANNOT_SHRINK for the count the account ends with.
    let mut bad = calls(&truth);
    bad[11] = call(11, (1_000, 1_100), reshard(4), cannot_shrink());
    let (anomalies, _) = check(&bad, &keyed(), &truth, Some(64));
    assert_eq!(
        checks_of(&anomalies),
        ["shards_only_rise"],
        "{anomalies:#?}"
    );
    // OK with fewer shards than asked.
    let mut bad = calls(&truth);
    bad[10].answer = ok(Reply::Shards {
        shards: 2,
        balance: 1_160,
        raised: false,
    });
    let (anomalies, _) = check(&bad, &keyed(), &truth, Some(64));
    assert!(
        checks_of(&anomalies)
            .iter()
            .all(|c| *c == "shards_only_rise")
            && !anomalies.is_empty(),
        "{anomalies:#?}"
    );
}

#[test]
fn pages_of_a_resharded_account_are_checked_on_shard_0() {
    let truth = truth();
    // A wrong balance_after before the first entry of another shard.
    let mut bad = calls(&truth);
    if let Some(Reply::Page { entries, .. }) = &mut bad[6].answer.reply {
        entries[0].balance_after -= 1;
    }
    let (anomalies, _) = check(&bad, &keyed(), &truth, Some(64));
    assert_eq!(
        checks_of(&anomalies),
        ["history_page_is_a_cut"],
        "{anomalies:#?}"
    );
    // A short page that stops before shard 0's entry 1.
    let mut bad = calls(&truth);
    bad[6].answer = ok(page(&truth, &["p1"]));
    let (anomalies, _) = check(&bad, &keyed(), &truth, Some(64));
    assert_eq!(
        checks_of(&anomalies),
        ["history_page_is_a_cut"],
        "{anomalies:#?}"
    );
    // A first page that misses p3, acknowledged before it began.
    let mut bad = calls(&truth);
    bad[5].answer = ok(page(&truth, &["p2", "p1"]));
    let (anomalies, _) = check(&bad, &keyed(), &truth, Some(64));
    assert_eq!(
        checks_of(&anomalies),
        ["history_page_is_a_cut"],
        "{anomalies:#?}"
    );
}
