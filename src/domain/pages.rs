//! Pages: a history page and an accounts page, each continued by a page
//! token, and a watch of an account's history, continued by a resume token.
//! All tokens share one skeleton: URL-safe base64 of
//! `<version>|<whose>|<where>`, where `whose` makes a token from another
//! account's history or another listing an error instead of a silent wrong
//! page; history and watch tokens also share the per-shard cursor list.

use super::fields::{InvalidField, parse_text};
use super::ids::AccountId;
use super::limits::{
    BALANCE_SHARDS_MAX, LIST_PAGE_SIZE_DEFAULT, LIST_PAGE_SIZE_MAX, PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX, PAGE_TOKEN_BYTES_MAX, WATCH_SECONDS_MAX,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A token of the shared skeleton from its three parts.
fn seal_token(version: &str, whose: &str, position: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{version}|{whose}|{position}"))
}

/// The three parts of a token of the shared skeleton, or None when it is
/// too long, not URL-safe base64, not UTF-8 or not three parts.
fn open_token(token: &str) -> Option<[String; 3]> {
    if token.len() > PAGE_TOKEN_BYTES_MAX {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split('|');
    let (Some(version), Some(whose), Some(position), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some([version.to_owned(), whose.to_owned(), position.to_owned()])
}

/// A validated request for a page of history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub account_id: AccountId,
    pub page_size: u32,
    /// Continue with entries older than this sequence number (of shard 0);
    /// None starts from the newest entry.
    pub before_sequence: Option<u64>,
    /// For a sharded account, where the other shards continue (see
    /// [`PageToken`]); empty otherwise.
    pub other_shards: Vec<u64>,
}

impl HistoryPage {
    pub fn parse(account_id: &str, page_size: i32, page_token: &str) -> Result<Self, InvalidField> {
        let account_id = AccountId::parse("account_id", account_id)?;
        let page_size = match u32::try_from(page_size) {
            Ok(0) => PAGE_SIZE_DEFAULT,
            Ok(n) if n <= PAGE_SIZE_MAX => n,
            _ => {
                return Err(InvalidField::new(
                    "page_size",
                    format!(
                        "is {page_size}; it must be between 0 (meaning {PAGE_SIZE_DEFAULT}) and {PAGE_SIZE_MAX}"
                    ),
                ));
            }
        };
        let (before_sequence, other_shards) = if page_token.is_empty() {
            (None, Vec::new())
        } else {
            let token = PageToken::decode(page_token, &account_id)?;
            (Some(token.before_sequence), token.other_shards)
        };
        Ok(Self {
            account_id,
            page_size,
            before_sequence,
            other_shards,
        })
    }
}

/// Where a history stream continues: right after (older than) the entry
/// with sequence `before_sequence` of shard 0, for one account, and for a
/// sharded account before `other_shards[k - 1]` in each shard k >= 1 (1
/// there means that shard has nothing older). Encoded on the shared
/// skeleton as `v1|<account_id>|<sequence>` for an ordinary account and
/// `v2|<account_id>|<shard 0>.<shard 1>...` for a sharded one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    pub account_id: AccountId,
    pub before_sequence: u64,
    /// Empty for an ordinary account.
    pub other_shards: Vec<u64>,
}

const PAGE_TOKEN_VERSION: &str = "v1";
const PAGE_TOKEN_VERSION_SHARDED: &str = "v2";

/// A cursor as it appears in a token: decimal, no sign, no leading zero.
fn parse_cursor(text: &str) -> Option<u64> {
    if text.starts_with(['0', '+']) {
        return None;
    }
    text.parse().ok()
}

impl PageToken {
    pub fn encode(&self) -> String {
        let account = self.account_id.as_str();
        if self.other_shards.is_empty() {
            let position = self.before_sequence.to_string();
            return seal_token(PAGE_TOKEN_VERSION, account, &position);
        }
        seal_token(
            PAGE_TOKEN_VERSION_SHARDED,
            account,
            &join_cursors(&self.cursors()),
        )
    }

    /// The cursor of every shard, shard 0 first.
    pub fn cursors(&self) -> Vec<u64> {
        std::iter::once(self.before_sequence)
            .chain(self.other_shards.iter().copied())
            .collect()
    }

    pub fn decode(token: &str, account_id: &AccountId) -> Result<Self, InvalidField> {
        let malformed = || {
            InvalidField::new(
                "page_token",
                "is not a token this service issued; pass a next_page_token from an earlier response, or an empty string to start from the newest entry",
            )
        };
        let [version, account, position] = open_token(token).ok_or_else(malformed)?;
        let token_account = AccountId::parse("page_token", &account).map_err(|_| malformed())?;
        if version != PAGE_TOKEN_VERSION && version != PAGE_TOKEN_VERSION_SHARDED {
            return Err(malformed());
        }
        if &token_account != account_id {
            return Err(InvalidField::new(
                "page_token",
                "belongs to another account's history; start with an empty page_token",
            ));
        }
        if version == PAGE_TOKEN_VERSION {
            // Sequences start at 1, and a token continues before an existing
            // entry, so a valid token carries at least 2. Leading zeros and
            // signs are rejected so that every position has exactly one token.
            let before_sequence = parse_cursor(&position)
                .filter(|&c| c >= 2)
                .ok_or_else(malformed)?;
            return Ok(Self {
                account_id: token_account,
                before_sequence,
                other_shards: Vec::new(),
            });
        }
        // Sharded: 2 to BALANCE_SHARDS_MAX cursors, each at least 1 (that
        // shard is done), and at least one shard with something older.
        let cursors = split_cursors(&position).ok_or_else(malformed)?;
        if cursors.len() < 2 || cursors.iter().all(|&c| c < 2) {
            return Err(malformed());
        }
        Ok(Self {
            account_id: token_account,
            before_sequence: cursors[0],
            other_shards: cursors[1..].to_vec(),
        })
    }
}

/// Per-shard cursors as a token carries them: `c0.c1...`, shard 0 first.
fn join_cursors(cursors: &[u64]) -> String {
    let text: Vec<String> = cursors.iter().map(u64::to_string).collect();
    text.join(".")
}

/// The cursors of a token's position: 1 to [`BALANCE_SHARDS_MAX`] of them,
/// each at least 1; None otherwise.
fn split_cursors(position: &str) -> Option<Vec<u64>> {
    let cursors = position
        .split('.')
        .map(parse_cursor)
        .collect::<Option<Vec<u64>>>()?;
    let shards = u32::try_from(cursors.len()).ok()?;
    ((1..=BALANCE_SHARDS_MAX).contains(&shards) && !cursors.contains(&0)).then_some(cursors)
}

/// Where a watch of an account's history continues: in each shard k, at
/// the entry with sequence `next[k]` (1: the shard's first entry), so that
/// everything below it was sent. Encoded on the shared skeleton as
/// `w1|<account_id>|<next 0>.<next 1>...`, one cursor per shard the
/// account had when the token was made (a reshard only adds shards; the
/// ones a token lacks start at their first entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchToken {
    pub account_id: AccountId,
    pub next: Vec<u64>,
}

const WATCH_TOKEN_VERSION: &str = "w1";

impl WatchToken {
    pub fn encode(&self) -> String {
        seal_token(
            WATCH_TOKEN_VERSION,
            self.account_id.as_str(),
            &join_cursors(&self.next),
        )
    }

    pub fn decode(token: &str, account_id: &AccountId) -> Result<Self, InvalidField> {
        let malformed = || {
            InvalidField::new(
                "resume_token",
                "is not a resume token this service issued; pass a resume_token from an earlier WatchAccount response (not a page token), or an empty string to watch from now",
            )
        };
        let [version, account, position] = open_token(token).ok_or_else(malformed)?;
        let token_account = AccountId::parse("resume_token", &account).map_err(|_| malformed())?;
        if version != WATCH_TOKEN_VERSION {
            return Err(malformed());
        }
        if &token_account != account_id {
            return Err(InvalidField::new(
                "resume_token",
                "belongs to a watch of another account; start with an empty resume_token",
            ));
        }
        let next = split_cursors(&position).ok_or_else(malformed)?;
        Ok(Self {
            account_id: token_account,
            next,
        })
    }
}

/// A validated WatchAccount request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchRequest {
    pub account_id: AccountId,
    /// Where to continue (one cursor per shard, see [`WatchToken`]); None
    /// watches from now.
    pub resume: Option<Vec<u64>>,
    /// How long the call may last, 1 to [`WATCH_SECONDS_MAX`] seconds;
    /// None: as long as the transport allows.
    pub max_seconds: Option<u32>,
}

impl WatchRequest {
    pub fn parse(
        account_id: &str,
        resume_token: &str,
        max_seconds: i32,
    ) -> Result<Self, InvalidField> {
        let account_id = AccountId::parse("account_id", account_id)?;
        let max_seconds = match u32::try_from(max_seconds) {
            Ok(0) => None,
            Ok(n) if n <= WATCH_SECONDS_MAX => Some(n),
            _ => {
                return Err(InvalidField::new(
                    "max_seconds",
                    format!(
                        "is {max_seconds}; it must be between 0 (meaning as long as the transport allows) and {WATCH_SECONDS_MAX}"
                    ),
                ));
            }
        };
        let resume = if resume_token.is_empty() {
            None
        } else {
            Some(WatchToken::decode(resume_token, &account_id)?.next)
        };
        Ok(Self {
            account_id,
            resume,
            max_seconds,
        })
    }
}

/// Whose accounts a ListAccounts call lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Every account (admins).
    All,
    /// One owner's.
    Owner(String),
}

/// A validated ListAccounts page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountsPage {
    pub listing: Listing,
    pub page_size: u32,
    /// Continue after this account id.
    pub after: Option<AccountId>,
}

const LIST_TOKEN_VERSION: &str = "l1";

impl AccountsPage {
    /// `owner` is the request's owner field, `caller`/`admin` who asks:
    /// anyone but an admin lists their own accounts only.
    pub fn parse(
        caller: &str,
        admin: bool,
        owner: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<Self, InvalidField> {
        let listing = match (admin, owner.is_empty()) {
            (true, true) => Listing::All,
            (true, false) => Listing::Owner(parse_text("owner", owner)?),
            (false, true) => Listing::Owner(caller.to_owned()),
            (false, false) if owner == caller => Listing::Owner(caller.to_owned()),
            (false, false) => {
                return Err(InvalidField::new(
                    "owner",
                    "may only be set by an admin; leave it empty to list your own accounts",
                ));
            }
        };
        let page_size = match u32::try_from(page_size) {
            Ok(0) => LIST_PAGE_SIZE_DEFAULT,
            Ok(n) if n <= LIST_PAGE_SIZE_MAX => n,
            _ => {
                return Err(InvalidField::new(
                    "page_size",
                    format!(
                        "is {page_size}; it must be between 0 (meaning {LIST_PAGE_SIZE_DEFAULT}) and {LIST_PAGE_SIZE_MAX}"
                    ),
                ));
            }
        };
        let after = if page_token.is_empty() {
            None
        } else {
            Some(Self::decode_token(page_token, &listing)?)
        };
        Ok(Self {
            listing,
            page_size,
            after,
        })
    }

    fn listing_tag(listing: &Listing) -> String {
        match listing {
            Listing::All => "*".to_owned(),
            Listing::Owner(owner) => format!("o{}", URL_SAFE_NO_PAD.encode(owner)),
        }
    }

    /// The token that continues a listing after `last`.
    pub fn token_after(&self, last: &str) -> String {
        seal_token(LIST_TOKEN_VERSION, &Self::listing_tag(&self.listing), last)
    }

    fn decode_token(token: &str, listing: &Listing) -> Result<AccountId, InvalidField> {
        let malformed = || {
            InvalidField::new(
                "page_token",
                "is not a token this service issued; pass next_page_token from the previous page, or an empty string for the first page",
            )
        };
        let [version, tag, last] = open_token(token).ok_or_else(malformed)?;
        if version != LIST_TOKEN_VERSION {
            return Err(malformed());
        }
        if tag != Self::listing_tag(listing) {
            return Err(InvalidField::new(
                "page_token",
                "belongs to another listing (another owner); start with an empty page_token",
            ));
        }
        AccountId::parse("page_token", &last).map_err(|_| malformed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_forgeries() {
        let alice = AccountId::parse("a", "alice").unwrap();
        let bob = AccountId::parse("a", "bob").unwrap();
        let token = PageToken {
            account_id: alice.clone(),
            before_sequence: 42,
            other_shards: Vec::new(),
        };
        let text = token.encode();
        assert_eq!(PageToken::decode(&text, &alice), Ok(token));
        let foreign = PageToken::decode(&text, &bob).unwrap_err();
        assert!(foreign.reason.contains("another account"));
        let forged = |raw: &str| PageToken::decode(&URL_SAFE_NO_PAD.encode(raw), &alice);
        for raw in [
            "v1|alice|1",
            "v1|alice|0",
            "v1|alice|-3",
            "v1|alice|+3",
            "v1|alice|03",
            "v1|alice|x",
            "v1|alice|99999999999999999999999",
            "v2|alice|3",
            "v1|alice",
            "v1|alice|3|4",
            "v1|al ice|3",
        ] {
            assert_eq!(forged(raw).unwrap_err().field, "page_token", "{raw}");
        }
        for raw in ["!!!", "", "dj F8", &"A".repeat(PAGE_TOKEN_BYTES_MAX + 1)] {
            assert!(PageToken::decode(raw, &alice).is_err(), "{raw}");
        }
    }

    #[test]
    fn sharded_page_tokens_round_trip_on_the_shared_skeleton() {
        let alice = AccountId::parse("a", "alice").unwrap();
        let token = PageToken {
            account_id: alice.clone(),
            before_sequence: 9,
            other_shards: vec![1, 4],
        };
        let text = token.encode();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&text).unwrap(),
            b"v2|alice|9.1.4".to_vec()
        );
        assert_eq!(PageToken::decode(&text, &alice), Ok(token));
        let forged = |raw: &str| PageToken::decode(&URL_SAFE_NO_PAD.encode(raw), &alice);
        for raw in [
            "v2|alice|1.1",
            "v2|alice|3.0",
            "v2|alice|3.01",
            "v3|alice|3.4",
        ] {
            assert!(forged(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn history_pages_default_and_bound_the_page_size() {
        assert_eq!(
            HistoryPage::parse("a", 0, "").unwrap().page_size,
            PAGE_SIZE_DEFAULT
        );
        assert_eq!(HistoryPage::parse("a", 1000, "").unwrap().page_size, 1000);
        assert_eq!(
            HistoryPage::parse("a", 1001, "").unwrap_err().field,
            "page_size"
        );
        assert_eq!(
            HistoryPage::parse("a", -1, "").unwrap_err().field,
            "page_size"
        );
        assert_eq!(
            HistoryPage::parse("a", 5, "zz").unwrap_err().field,
            "page_token"
        );
        let a = AccountId::parse("a", "a").unwrap();
        let token = PageToken {
            account_id: a,
            before_sequence: 7,
            other_shards: Vec::new(),
        }
        .encode();
        assert_eq!(
            HistoryPage::parse("a", 5, &token).unwrap().before_sequence,
            Some(7)
        );
    }

    #[test]
    fn watch_tokens_round_trip_on_the_shared_skeleton_and_stay_with_their_account() {
        let alice = AccountId::parse("a", "alice").unwrap();
        let bob = AccountId::parse("a", "bob").unwrap();
        for next in [vec![1], vec![7], vec![3, 1, 9]] {
            let token = WatchToken {
                account_id: alice.clone(),
                next,
            };
            assert_eq!(WatchToken::decode(&token.encode(), &alice), Ok(token));
        }
        let text = WatchToken {
            account_id: alice.clone(),
            next: vec![9, 1, 4],
        }
        .encode();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&text).unwrap(),
            b"w1|alice|9.1.4".to_vec()
        );
        let foreign = WatchToken::decode(&text, &bob).unwrap_err();
        assert!(foreign.reason.contains("another account"), "{foreign}");
        let forged = |raw: &str| WatchToken::decode(&URL_SAFE_NO_PAD.encode(raw), &alice);
        let too_many = vec!["1"; BALANCE_SHARDS_MAX as usize + 1].join(".");
        for raw in [
            "w1|alice|0",
            "w1|alice|",
            "w1|alice|01",
            "w1|alice|3.0",
            "w1|alice|-1",
            "w1|alice|x",
            "v1|alice|3",
            "v2|alice|3.4",
            "w2|alice|3",
            &format!("w1|alice|{too_many}"),
        ] {
            assert_eq!(forged(raw).unwrap_err().field, "resume_token", "{raw}");
        }
        // A history page token is not a resume token, nor the reverse.
        let page = PageToken {
            account_id: alice.clone(),
            before_sequence: 5,
            other_shards: Vec::new(),
        }
        .encode();
        assert!(WatchToken::decode(&page, &alice).is_err());
        assert!(PageToken::decode(&text, &alice).is_err());
        assert!(WatchToken::decode(&"A".repeat(PAGE_TOKEN_BYTES_MAX + 1), &alice).is_err());
    }

    #[test]
    fn watch_requests_bound_their_duration_and_name_the_field() {
        let r = WatchRequest::parse("alice", "", 0).unwrap();
        assert_eq!((r.resume, r.max_seconds), (None, None));
        assert_eq!(
            WatchRequest::parse("alice", "", 300).unwrap().max_seconds,
            Some(300)
        );
        for bad in [-1, 301, i32::MAX, i32::MIN] {
            assert_eq!(
                WatchRequest::parse("alice", "", bad).unwrap_err().field,
                "max_seconds"
            );
        }
        assert_eq!(
            WatchRequest::parse("", "", 0).unwrap_err().field,
            "account_id"
        );
        assert_eq!(
            WatchRequest::parse("alice", "zz", 0).unwrap_err().field,
            "resume_token"
        );
    }

    #[test]
    fn account_listings_are_their_callers_and_tokens_stay_in_their_listing() {
        let own = AccountsPage::parse("alice", false, "", 0, "").unwrap();
        assert_eq!(own.listing, Listing::Owner("alice".into()));
        assert_eq!(own.page_size, LIST_PAGE_SIZE_DEFAULT);
        assert_eq!(
            AccountsPage::parse("alice", false, "bob", 0, "")
                .unwrap_err()
                .field,
            "owner"
        );
        let all = AccountsPage::parse("root", true, "", 100, "").unwrap();
        assert_eq!(all.listing, Listing::All);
        for bad in [-1, 101] {
            assert_eq!(
                AccountsPage::parse("alice", false, "", bad, "")
                    .unwrap_err()
                    .field,
                "page_size"
            );
        }
        let token = own.token_after("acct-7");
        let next = AccountsPage::parse("alice", false, "", 10, &token).unwrap();
        assert_eq!(next.after.unwrap().as_str(), "acct-7");
        // Bob cannot continue Alice's listing, nor an admin's listing of all.
        let err = AccountsPage::parse("bob", false, "", 10, &token).unwrap_err();
        assert!(err.reason.contains("another listing"), "{err}");
        assert!(AccountsPage::parse("root", true, "", 10, &token).is_err());
        assert!(AccountsPage::parse("alice", false, "", 10, "garbage!").is_err());
        assert!(AccountsPage::parse("alice", false, "", 10, &"A".repeat(3000)).is_err());
    }
}
