//! The tables before and after a case: every item of both, and what a
//! case may have changed: nothing, except for the OK rows that write, whose
//! one effect (an account opened, a payment made, a hold placed, shards
//! raised) is checked item by item.

use super::table::Effect;
use aws_sdk_dynamodb::types::AttributeValue;
use payment::ledger::Ledger;
use std::collections::BTreeMap;

/// Every item of both tables, by key, attributes in order.
pub(super) type Snapshot = BTreeMap<String, BTreeMap<String, AttributeValue>>;

pub(super) async fn snapshot(client: &aws_sdk_dynamodb::Client, ledger: &Ledger) -> Snapshot {
    let tables = ledger.tables();
    let mut all = Snapshot::new();
    for (table, label) in [(&tables.accounts, "account"), (&tables.ledger, "ledger")] {
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                let key = if label == "account" {
                    format!("account|{}", s_attr(item, "account_id"))
                } else {
                    format!("ledger|{}|{}", s_attr(item, "pk"), s_attr(item, "sk"))
                };
                let attributes = item.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                all.insert(key, attributes);
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
    }
    all
}

fn s_attr(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(s)) => s.clone(),
        other => panic!("item without string {name}: {other:?}"),
    }
}

pub(super) fn balance_in(snapshot: &Snapshot, account: &str) -> i64 {
    match snapshot[&format!("account|{account}")].get("balance") {
        Some(AttributeValue::N(n)) => n.parse().expect("balance is a number"),
        other => panic!("{account}: balance {other:?}"),
    }
}

/// The keys added, removed and changed between two snapshots.
fn diff(before: &Snapshot, after: &Snapshot) -> (Vec<String>, Vec<String>, Vec<String>) {
    let added = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    let removed = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    let changed = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k.clone())
        .collect();
    (added, removed, changed)
}

/// Checks that the tables changed by exactly `effect`.
pub(super) fn check_effect(name: &str, effect: &Effect, before: &Snapshot, after: &Snapshot) {
    let (added, removed, changed) = diff(before, after);
    assert!(removed.is_empty(), "{name}: items removed: {removed:?}");
    let seen = Changes {
        name,
        added,
        changed,
        before,
        after,
    };
    match effect {
        Effect::Nothing => seen.nothing(),
        Effect::Opened { account, balance } => seen.opened(account, *balance),
        Effect::Paid { from, to, amount } => seen.paid(from, to, *amount),
        Effect::Held { from, .. } => seen.held(from),
        Effect::Resharded { account, from, to } => seen.resharded(account, *from, *to),
    }
}

/// What one case changed: the keys added and changed between two snapshots.
struct Changes<'a> {
    name: &'a str,
    added: Vec<String>,
    changed: Vec<String>,
    before: &'a Snapshot,
    after: &'a Snapshot,
}

impl Changes<'_> {
    fn nothing(&self) {
        let Changes {
            name,
            added,
            changed,
            ..
        } = self;
        assert!(
            added.is_empty() && changed.is_empty(),
            "{name}: a read changed the tables: added {added:?}, changed {changed:?}"
        );
    }

    fn opened(&self, account: &str, balance: i64) {
        let Changes {
            name,
            added,
            changed,
            after,
            ..
        } = self;
        let mut expected = vec![format!("account|{account}")];
        if balance > 0 {
            expected.push(format!("ledger|A#{account}|E#{:020}", 1));
        }
        expected.sort();
        assert_eq!(*added, expected, "{name}: items added");
        assert!(changed.is_empty(), "{name}: items changed: {changed:?}");
        assert_eq!(balance_in(after, account), balance, "{name}");
    }

    fn paid(&self, from: &str, to: &str, amount: i64) {
        let Changes {
            name,
            added,
            changed,
            before,
            after,
        } = self;
        let mut expected_changed = vec![format!("account|{from}"), format!("account|{to}")];
        expected_changed.sort();
        assert_eq!(*changed, expected_changed, "{name}: items changed");
        assert_eq!(added.len(), 3, "{name}: items added: {added:?}");
        assert!(
            added
                .iter()
                .any(|k| k.starts_with(&format!("ledger|P#{from}|"))),
            "{name}: no payment record in {added:?}"
        );
        for account in [from, to] {
            assert!(
                added
                    .iter()
                    .any(|k| k.starts_with(&format!("ledger|A#{account}|E#"))),
                "{name}: no entry for {account} in {added:?}"
            );
        }
        assert_eq!(
            balance_in(after, from),
            balance_in(before, from) - amount,
            "{name}: sender"
        );
        assert_eq!(
            balance_in(after, to),
            balance_in(before, to) + amount,
            "{name}: recipient"
        );
    }

    fn held(&self, from: &str) {
        let Changes {
            name,
            added,
            changed,
            before,
            after,
        } = self;
        assert_eq!(
            *changed,
            vec![format!("account|{from}")],
            "{name}: items changed"
        );
        assert_eq!(added.len(), 1, "{name}: items added: {added:?}");
        assert!(
            added[0].starts_with(&format!("ledger|P#{from}|")),
            "{name}: no hold record in {added:?}"
        );
        assert_eq!(
            balance_in(after, from),
            balance_in(before, from),
            "{name}: a hold moves no money"
        );
    }

    fn resharded(&self, account: &str, from: u32, to: u32) {
        let Changes {
            name,
            added,
            changed,
            before,
            after,
        } = self;
        let key = |shard: u32| shard_key(account, shard);
        let mut new_shards: Vec<String> = (from..to).map(key).collect();
        new_shards.sort();
        let mut old_shards: Vec<String> = (0..from).map(key).collect();
        old_shards.sort();
        assert_eq!(*added, new_shards, "{name}: items added");
        assert_eq!(*changed, old_shards, "{name}: items changed");
        let count = AttributeValue::N(to.to_string());
        for shard in 0..to {
            assert_eq!(
                after[&key(shard)].get("shards"),
                Some(&count),
                "{name}: shard {shard} has the new count"
            );
        }
        // No shard's version or balance changes: no money moves, and
        // no history sequence gets a gap.
        let state = |snapshot: &Snapshot, shard: u32| {
            let item = &snapshot[&key(shard)];
            (item.get("version").cloned(), item.get("balance").cloned())
        };
        for shard in 0..from {
            assert_eq!(
                state(after, shard),
                state(before, shard),
                "{name}: old shard {shard}"
            );
        }
        let empty = (
            Some(AttributeValue::N("0".into())),
            Some(AttributeValue::N("0".into())),
        );
        for shard in from..to {
            assert_eq!(state(after, shard), empty, "{name}: new shard {shard}");
        }
        assert_eq!(
            total_balance(after, account),
            total_balance(before, account),
            "{name}: a reshard moves no money"
        );
    }
}

/// The key of an account's shard in a [`Snapshot`]: shard 0 is the
/// account's own item.
pub(super) fn shard_key(account: &str, shard: u32) -> String {
    if shard == 0 {
        format!("account|{account}")
    } else {
        format!("account|{account}#{shard}")
    }
}

/// An account's balance over all its shards.
pub(super) fn total_balance(snapshot: &Snapshot, account: &str) -> i64 {
    let shard_prefix = format!("account|{account}#");
    snapshot
        .iter()
        .filter(|(k, _)| **k == shard_key(account, 0) || k.starts_with(&shard_prefix))
        .map(|(k, item)| match item.get("balance") {
            Some(AttributeValue::N(n)) => n.parse::<i64>().expect("balance is a number"),
            other => panic!("{k}: balance {other:?}"),
        })
        .sum()
}

/// How many history entries an (unsharded) account has in a snapshot.
pub(super) fn entries_in(snapshot: &Snapshot, account: &str) -> u64 {
    let prefix = format!("ledger|A#{account}|E#");
    snapshot.keys().filter(|k| k.starts_with(&prefix)).count() as u64
}
