//! How a round ends, the same for every operation: its write committed, or
//! it may have (the record says), or it was cancelled (the reasons say
//! whether the call's record answers it, or what to learn before the next
//! round). Each operation matches on [`Settled`] for what is its own: the
//! outcome of a commit, the answer from a stored record, the lesson of a
//! cancellation.

use super::rounds::Rounds;
use super::transact::{Reason, Written, reason};
use crate::ledger::layout::{HoldRecord, Item, StoredRecord};
use crate::ledger::{Ledger, LedgerError};

/// What one round of a call came to: the call's answer, or another round.
pub(in crate::ledger) enum Next<T> {
    Done(T),
    Again,
}

/// What a round's plan came to: what to write, or a record already stored
/// under the call's key, which answers the call.
pub(in crate::ledger) enum Plan<W> {
    Write(W),
    Stored(Box<StoredRecord>),
}

/// What a round's write came to, with the call's record `R` where it
/// answers (see [`Ledger::settle`] and [`Ledger::settle_hold`]).
pub(in crate::ledger) enum Settled<R> {
    /// The write committed: the round's own outcome answers.
    Committed,
    /// No answer came (a timeout, a dropped connection, a 5xx): the write
    /// may or may not have committed. `read` is the record as read since,
    /// None when it is absent or the read failed.
    Unknown { cause: String, read: Option<R> },
    /// The record's item failed its condition (its key was taken, or the
    /// hold ended): the record as it is now, which answers.
    Taken(R),
    /// Cancelled with the record's item fine: the reasons, one per item, to
    /// learn from before the next round.
    Again(Vec<Reason>),
}

impl Ledger {
    /// Settles the write of a round whose item `record_at` puts the call's
    /// record under `key`: after no answer the record says whether it
    /// committed; after a cancellation [`Rounds::met`] takes in the reasons
    /// (ending the call on an invalid request), and a failed put means the
    /// key is taken.
    pub(in crate::ledger) async fn settle(
        &self,
        written: Written,
        rounds: &mut Rounds,
        key: &Item,
        record_at: usize,
    ) -> Result<Settled<StoredRecord>, LedgerError> {
        match written {
            Written::Committed => Ok(Settled::Committed),
            Written::Unknown(cause) => {
                let read = self.read_record(key).await.ok().flatten();
                Ok(Settled::Unknown { cause, read })
            }
            Written::Cancelled(reasons) => {
                rounds.met(&reasons)?;
                match self.taken(reason(&reasons, record_at), key).await? {
                    Some(stored) => Ok(Settled::Taken(stored)),
                    None => Ok(Settled::Again(reasons)),
                }
            }
        }
    }

    /// Settles the write of a round whose item `record_at` ends `hold` (a
    /// capture or a void): after no answer the hold's record says whether
    /// it committed; after a cancellation [`Rounds::met`] takes in the
    /// reasons, and a failed record condition means the hold ended or
    /// expired, which the record as DynamoDB returned it says.
    pub(in crate::ledger) async fn settle_hold(
        &self,
        written: Written,
        rounds: &mut Rounds,
        hold: &HoldRecord,
        record_at: usize,
    ) -> Result<Settled<HoldRecord>, LedgerError> {
        match written {
            Written::Committed => Ok(Settled::Committed),
            Written::Unknown(cause) => {
                let read = self.reread_hold(hold).await.ok();
                Ok(Settled::Unknown { cause, read })
            }
            Written::Cancelled(reasons) => {
                rounds.met(&reasons)?;
                let record = reason(&reasons, record_at);
                if record.failed() {
                    let ended = self.returned_hold(record.item(), hold).await?;
                    return Ok(Settled::Taken(ended));
                }
                Ok(Settled::Again(reasons))
            }
        }
    }

    /// The record under `key` once every round was refused: the last round
    /// may have committed after all (a TransactionInProgress answer, say).
    /// Without one, the rounds' refusal.
    pub(in crate::ledger) async fn stored_or_exhausted(
        &self,
        key: &Item,
        rounds: &Rounds,
    ) -> Result<StoredRecord, LedgerError> {
        match self.read_record(key).await {
            Ok(Some(stored)) => Ok(stored),
            _ => Err(rounds.exhausted()),
        }
    }
}
