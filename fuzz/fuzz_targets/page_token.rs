//! Page tokens: `PageToken::decode`, `PageToken::encode` and
//! `HistoryPage::parse` on arbitrary text; and WatchAccount's resume tokens
//! (`WatchToken`), which share the skeleton.
//!
//! Input: a mode byte, then up to four lines:
//! `<account_id>\n<token>\n<page_size>\n<sequence>`.
//! Mode `p` takes the token line as the token's plaintext (it is encoded
//! as URL-safe base64 first), so the fuzzer works on `v1|<account>|<seq>`
//! directly; any other mode byte takes the token line as the token itself.
//!
//! Properties:
//! * whatever decodes re-encodes to the same token (one token per
//!   position), is no longer than PAGE_TOKEN_BYTES_MAX, belongs to the
//!   account it was decoded for, and continues before an existing entry:
//!   an ordinary account's sequence is at least 2, a sharded account's
//!   cursors (2 to BALANCE_SHARDS_MAX of them) are each at least 1 and one
//!   at least 2;
//! * a token decodes exactly when its plaintext is `v1|<account>|<n>` with
//!   the caller's account and n a canonical decimal from 2 to u64::MAX, or
//!   `v2|<account>|<c0>.<c1>...` with such cursors;
//! * a token of one account never decodes for another;
//! * `HistoryPage::parse` accepts exactly a valid account id, a page size
//!   from 0 to PAGE_SIZE_MAX and an empty or decodable token, with the page
//!   size defaulted and the token's sequence;
//! * for every valid account id and sequence, decode(encode(t)) == t when
//!   the sequence is at least 2 (every token the service issues is
//!   accepted back, whatever its length), and an error below 2;
//! * a resume token decodes exactly when its plaintext is
//!   `w1|<account>|<c0>.<c1>...` with the caller's account and 1 to
//!   BALANCE_SHARDS_MAX canonical cursors of at least 1; it re-encodes to
//!   itself, never decodes for another account, and no token decodes both
//!   as a page token and as a resume token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use payment::domain::{
    AccountId, BALANCE_SHARDS_MAX, HistoryPage, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX,
    PAGE_TOKEN_BYTES_MAX, PageToken, WatchToken,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let account = lines.next().unwrap_or("");
    let token_line = lines.next().unwrap_or("");
    let page_size = lines.next().and_then(|l| l.trim().parse::<i32>().ok());
    let sequence = lines.next().and_then(|l| l.trim().parse::<u64>().ok());

    let (token, plaintext) = if mode == b'p' {
        (
            payment_ledger_fuzz::base64_url(token_line.as_bytes()),
            Some(token_line.as_bytes().to_vec()),
        )
    } else {
        (token_line.to_owned(), None)
    };

    let account_id = AccountId::parse("account_id", account).ok();
    if let Some(account_id) = &account_id {
        check_decode(&token, account_id, plaintext.as_deref());
        check_watch_decode(&token, account_id, plaintext.as_deref());
        if let Some(sequence) = sequence {
            round_trip(account_id, sequence);
        }
        round_trip(account_id, 2);
        round_trip(account_id, u64::MAX);
    }

    let page_size = page_size.unwrap_or(0);
    let page = HistoryPage::parse(account, page_size, &token);
    let size_ok = (0..=PAGE_SIZE_MAX as i64).contains(&i64::from(page_size));
    let decoded = match &account_id {
        Some(id) if !token.is_empty() => PageToken::decode(&token, id).ok(),
        _ => None,
    };
    let token_ok = token.is_empty() || decoded.is_some();
    assert_eq!(
        page.is_ok(),
        account_id.is_some() && size_ok && token_ok,
        "HistoryPage::parse({account:?}, {page_size}, {token:?}) = {page:?}"
    );
    if let Ok(page) = page {
        assert_eq!(Some(&page.account_id), account_id.as_ref());
        let expected_size = if page_size == 0 {
            PAGE_SIZE_DEFAULT
        } else {
            page_size as u32
        };
        assert_eq!(page.page_size, expected_size);
        assert!((1..=PAGE_SIZE_MAX).contains(&page.page_size));
        assert_eq!(
            page.before_sequence,
            decoded.as_ref().map(|t| t.before_sequence)
        );
        assert_eq!(
            page.other_shards,
            decoded.map(|t| t.other_shards).unwrap_or_default()
        );
    }
});

fn check_decode(token: &str, account_id: &AccountId, plaintext: Option<&[u8]>) {
    let decoded = PageToken::decode(token, account_id);
    if let Ok(t) = &decoded {
        assert_eq!(
            &t.account_id, account_id,
            "a token decoded for another account"
        );
        let cursors = t.cursors();
        if t.other_shards.is_empty() {
            assert!(
                t.before_sequence >= 2,
                "a token with sequence {}",
                t.before_sequence
            );
        } else {
            assert!((2..=BALANCE_SHARDS_MAX as usize).contains(&cursors.len()));
            assert!(cursors.iter().all(|&c| c >= 1) && cursors.iter().any(|&c| c >= 2));
        }
        assert_eq!(t.encode(), token, "a decodable token that is not canonical");
        assert!(token.len() <= PAGE_TOKEN_BYTES_MAX);
        let other = AccountId::parse("account_id", &format!("{account_id}x"))
            .or_else(|_| AccountId::parse("account_id", "x"))
            .expect("a valid account id");
        if &other != account_id {
            assert!(
                PageToken::decode(token, &other).is_err(),
                "a token of {account_id} decoded for {other}"
            );
        }
    }
    if let Some(plaintext) = plaintext {
        let expected = canonical(plaintext, account_id);
        assert_eq!(
            decoded.as_ref().ok().map(PageToken::cursors),
            expected,
            "decode of the plaintext {:?} for {account_id}",
            String::from_utf8_lossy(plaintext)
        );
    }
}

fn check_watch_decode(token: &str, account_id: &AccountId, plaintext: Option<&[u8]>) {
    let decoded = WatchToken::decode(token, account_id);
    if let Ok(t) = &decoded {
        assert_eq!(
            &t.account_id, account_id,
            "a resume token of another account"
        );
        assert!((1..=BALANCE_SHARDS_MAX as usize).contains(&t.next.len()));
        assert!(
            t.next.iter().all(|&c| c >= 1),
            "a cursor of 0: {:?}",
            t.next
        );
        assert_eq!(
            t.encode(),
            token,
            "a decodable resume token that is not canonical"
        );
        assert!(
            PageToken::decode(token, account_id).is_err(),
            "{token:?} decodes as a page token and as a resume token"
        );
        let other = AccountId::parse("account_id", &format!("{account_id}x"))
            .or_else(|_| AccountId::parse("account_id", "x"))
            .expect("a valid account id");
        if &other != account_id {
            assert!(WatchToken::decode(token, &other).is_err());
        }
    }
    if let Some(plaintext) = plaintext {
        assert_eq!(
            decoded.as_ref().ok().map(|t| t.next.clone()),
            canonical_watch(plaintext, account_id),
            "resume token of the plaintext {:?} for {account_id}",
            String::from_utf8_lossy(plaintext)
        );
    }
}

/// The cursors of a well-formed resume token plaintext for `account_id`.
fn canonical_watch(plaintext: &[u8], account_id: &AccountId) -> Option<Vec<u64>> {
    let text = std::str::from_utf8(plaintext).ok()?;
    if text.len() > PAGE_TOKEN_BYTES_MAX * 3 / 4 {
        return None;
    }
    let position = text
        .strip_prefix("w1|")?
        .strip_prefix(account_id.as_str())?
        .strip_prefix('|')?;
    let cursors = position
        .split('.')
        .map(|digits| {
            let canonical = !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0');
            canonical.then(|| digits.parse::<u64>().ok()).flatten()
        })
        .collect::<Option<Vec<u64>>>()?;
    (1..=BALANCE_SHARDS_MAX as usize)
        .contains(&cursors.len())
        .then_some(cursors)
}

/// The cursors of a well-formed token plaintext for `account_id`.
fn canonical(plaintext: &[u8], account_id: &AccountId) -> Option<Vec<u64>> {
    let text = std::str::from_utf8(plaintext).ok()?;
    if text.len() > PAGE_TOKEN_BYTES_MAX * 3 / 4 {
        return None; // The encoded token would be over the limit.
    }
    let decimal = |digits: &str| -> Option<u64> {
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return None;
        }
        digits.parse::<u64>().ok()
    };
    let (sharded, rest) = match (text.strip_prefix("v1|"), text.strip_prefix("v2|")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => return None,
    };
    let position = rest.strip_prefix(account_id.as_str())?.strip_prefix('|')?;
    if !sharded {
        return decimal(position).filter(|&n| n >= 2).map(|n| vec![n]);
    }
    let cursors = position
        .split('.')
        .map(decimal)
        .collect::<Option<Vec<u64>>>()?;
    let fits = (2..=BALANCE_SHARDS_MAX as usize).contains(&cursors.len())
        && cursors.iter().all(|&c| c >= 1)
        && cursors.iter().any(|&c| c >= 2);
    fits.then_some(cursors)
}

fn round_trip(account_id: &AccountId, sequence: u64) {
    let token = PageToken {
        account_id: account_id.clone(),
        before_sequence: sequence,
        other_shards: Vec::new(),
    };
    let text = token.encode();
    let decoded = PageToken::decode(&text, account_id);
    if sequence >= 2 {
        assert_eq!(
            decoded,
            Ok(token),
            "an issued token {text:?} is not accepted back"
        );
    } else {
        assert!(
            decoded.is_err(),
            "a token before sequence {sequence} decoded"
        );
    }
}
