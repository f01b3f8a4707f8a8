//! shards_only_rise: balance shards only rise, to a count asked for, and
//! every answer agrees.

use super::{Checker, Coverage, ReshardedAccount};
use crate::check::clients::{Call, Class, Reply, Request};
use std::collections::{BTreeSet, HashMap, HashSet};

const CHECK: &str = "shards_only_rise";

/// What a call showed of an account's count: at least `low`, exactly
/// `exact` when it said.
struct Seen {
    call: usize,
    invoked_us: u64,
    completed_us: u64,
    low: u32,
    exact: Option<u32>,
}

/// What the calls showed of the accounts' counts, per account: the counts
/// asked by SetBalanceShards calls that were not refused (they may have
/// raised it), and what calls showed; the SetBalanceShards operations; and
/// the anomalies found so far.
#[derive(Default)]
struct ShardLog<'a> {
    found: Vec<(String, Vec<usize>)>,
    asked: HashMap<&'a str, BTreeSet<u32>>,
    seen: HashMap<&'a str, Vec<Seen>>,
    ops: HashSet<usize>,
}

impl<'a> Checker<'a> {
    /// The balance shards of each account only rise, to a count someone
    /// asked for: the final count is the opening one, one a SetBalanceShards
    /// not refused asked for, or (an account that opened ordinary) the
    /// instances' promotion count. Every answer agrees with that: an OK
    /// shows at least the count asked, and at most the final count; a
    /// SHARDS_CANNOT_SHRINK comes only when the account had more than
    /// asked (so it ends with more); SHARD_OVER_SHARE never (no shard of
    /// the run comes near 10^15 / 64); and no answer shows fewer shards
    /// than one that completed before it began (balance reads, reshards'
    /// answers, pages with entries on a shard, refusals).
    pub(super) fn shards(&mut self, promote: Option<u32>, coverage: &mut Coverage) {
        let mut log = ShardLog::default();
        for call in self.calls {
            let Some((account, low, exact)) = self.shards_shown(call, &mut log, coverage) else {
                continue;
            };
            log.seen.entry(account).or_default().push(Seen {
                call: call.id,
                invoked_us: call.invoked_us,
                completed_us: call.completed_us,
                low,
                exact,
            });
        }
        coverage.reshard_ops = log.ops.len();
        for (id, truth) in &self.truth.accounts {
            let (opening, last) = (truth.spec.opening_shards, truth.shards);
            let asked = log.asked.get(id.as_str());
            log.found
                .extend(self.final_shards(id, (opening, last), asked, promote, coverage));
            let Some(seen) = log.seen.get(id.as_str()) else {
                continue;
            };
            log.found
                .extend(Self::shown_within(id, (opening, last), seen));
            log.found.extend(Self::shown_in_real_time(id, seen));
        }
        for (what, calls) in log.found {
            self.anomaly(CHECK, what, calls);
        }
    }

    /// What a call showed of its account's count: (account, at least,
    /// exactly), or None when it showed nothing.
    fn shards_shown(
        &self,
        call: &'a Call,
        log: &mut ShardLog<'a>,
        coverage: &mut Coverage,
    ) -> Option<(&'a str, u32, Option<u32>)> {
        match (&call.request, &call.answer.reply) {
            (Request::Balance { account }, Some(Reply::Balance { shards, .. })) => {
                Some((account.as_str(), *shards, Some(*shards)))
            }
            (Request::History { account, .. }, Some(Reply::Page { entries, .. })) => entries
                .iter()
                .map(|e| e.shard.saturating_add(1))
                .max()
                .map(|low| (account.as_str(), low, None)),
            (Request::SetShards { account, shards }, _) => {
                log.ops.insert(call.op);
                self.reshard_shown(call, account, *shards, log, coverage)
            }
            _ => None,
        }
    }

    /// What a SetBalanceShards call showed, and what is wrong with its
    /// answer: an OK with fewer shards than asked, a refusal other than
    /// SHARDS_CANNOT_SHRINK (which says the account had more).
    fn reshard_shown(
        &self,
        call: &'a Call,
        account: &'a str,
        shards: u32,
        log: &mut ShardLog<'a>,
        coverage: &mut Coverage,
    ) -> Option<(&'a str, u32, Option<u32>)> {
        let Some(truth) = self.truth.accounts.get(account) else {
            log.found.push((
                format!(
                    "call {} resharded {account}, no account of the run",
                    call.id
                ),
                vec![call.id],
            ));
            return None;
        };
        let what = format!("call {}: SetBalanceShards({account}, {shards})", call.id);
        match (call.answer.class, &call.answer.reply) {
            (
                Class::Ok,
                Some(Reply::Shards {
                    shards: answered,
                    raised,
                    ..
                }),
            ) => {
                log.asked.entry(account).or_default().insert(shards);
                if *raised {
                    coverage.reshards_raised += 1;
                } else {
                    coverage.reshards_unchanged += 1;
                }
                if *answered < shards {
                    log.found.push((
                        format!("{what} answered OK with {answered} shards"),
                        vec![call.id],
                    ));
                }
                Some((account, (*answered).max(shards), Some(*answered)))
            }
            // An OK that does not fit: ok_is_one_effect says so.
            (Class::Ok, _) => None,
            (Class::Ambiguous, _) => {
                log.asked.entry(account).or_default().insert(shards);
                None
            }
            (Class::Refused, _) => {
                coverage.reshards_refused += 1;
                let answer = &call.answer;
                if answer.code == "FailedPrecondition" && answer.reason == "SHARDS_CANNOT_SHRINK" {
                    // It had more than asked then.
                    return Some((account, shards.saturating_add(1), None));
                }
                let why = if answer.reason == "SHARD_OVER_SHARE" {
                    format!(
                        ", but no shard of it comes near its share of the balance limit (it ends with {} in all)",
                        truth.balance
                    )
                } else {
                    ", though it asks for a valid count of an account that exists, as an admin"
                        .to_owned()
                };
                log.found.push((
                    format!("{what} was refused {} {}{why}", answer.code, answer.reason),
                    vec![call.id],
                ));
                None
            }
        }
    }

    /// The account's final count (`counts`: opening, last) is no fewer
    /// than it opened with, and one asked for or promoted to; an account
    /// that rose is counted in the coverage, with its reads.
    fn final_shards(
        &self,
        id: &str,
        (opening, last): (u32, u32),
        asked: Option<&BTreeSet<u32>>,
        promote: Option<u32>,
        coverage: &mut Coverage,
    ) -> Option<(String, Vec<usize>)> {
        if last < opening {
            return Some((
                format!("{id} opened with {opening} shards and ends with {last}"),
                vec![],
            ));
        }
        if last == opening {
            return None;
        }
        let by_admin = asked.is_some_and(|a| a.contains(&last));
        let by_promotion = opening == 1 && promote == Some(last);
        coverage.accounts_resharded.push(ReshardedAccount {
            account: id.to_owned(),
            opening_shards: opening,
            final_shards: last,
            by: match (by_admin, by_promotion) {
                (true, true) => "SetBalanceShards or promotion",
                (false, true) => "promotion",
                _ => "SetBalanceShards",
            },
        });
        coverage.resharded_account_reads += self
            .calls
            .iter()
            .filter(|c| {
                c.answer.class == Class::Ok
                    && matches!(
                        &c.request,
                        Request::Balance { account } | Request::History { account, .. }
                            if account == id
                    )
            })
            .count();
        if by_admin || by_promotion {
            return None;
        }
        let promotion = match promote {
            Some(n) if opening == 1 => format!("promotion raises to {n}"),
            Some(_) => "promotion raises only ordinary accounts".to_owned(),
            None => "promotion is off".to_owned(),
        };
        Some((
            format!(
                "{id} opened with {opening} shards and ends with {last}, which no SetBalanceShards that was not refused asked for ({promotion})"
            ),
            vec![],
        ))
    }

    /// No call showed fewer shards than the account opened with, or more
    /// than it ends with.
    fn shown_within(
        id: &str,
        (opening, last): (u32, u32),
        seen: &[Seen],
    ) -> Vec<(String, Vec<usize>)> {
        seen.iter()
            .filter(|s| s.exact.is_some_and(|n| n < opening) || s.low > last)
            .map(|s| {
                (
                    format!(
                        "call {} showed {id} with {} shards, but it opened with {opening} and ends with {last}",
                        s.call,
                        s.exact.map_or(format!("at least {}", s.low), |n| n.to_string())
                    ),
                    vec![s.call],
                )
            })
            .collect()
    }

    /// Real time: each exact count against the most any call that
    /// completed before it began showed.
    fn shown_in_real_time(id: &str, seen: &[Seen]) -> Vec<(String, Vec<usize>)> {
        let mut found = Vec::new();
        let mut before: Vec<&Seen> = seen.iter().collect();
        before.sort_by_key(|s| s.completed_us);
        let mut after: Vec<&Seen> = seen.iter().filter(|s| s.exact.is_some()).collect();
        after.sort_by_key(|s| s.invoked_us);
        let mut most: Option<&Seen> = None;
        let mut next = 0;
        for s in after {
            while next < before.len() && before[next].completed_us < s.invoked_us {
                if most.is_none_or(|m| before[next].low > m.low) {
                    most = Some(before[next]);
                }
                next += 1;
            }
            if let (Some(m), Some(n)) = (most, s.exact)
                && n < m.low
            {
                found.push((
                    format!(
                        "call {} showed {id} with {n} shards, but call {} had shown at least {} before it began",
                        s.call, m.call, m.low
                    ),
                    vec![m.call, s.call],
                ));
            }
        }
        found
    }
}
