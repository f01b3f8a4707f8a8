use super::*;

/// A sample of one variant and what it must answer.
struct Case {
    err: ServiceError,
    code: Code,
    reason: &'static str,
    keys: &'static [&'static str],
}

/// Lists one sample of every variant of [`ServiceError`] and of
/// [`LedgerError`], each with the code, reason and metadata keys it must
/// answer with, in families: each family becomes a function of its samples,
/// and `every_case` all of them, family by family. The macro also writes one
/// match with one arm per sample of every family and no wildcard, so a
/// variant added without a sample here does not compile, and one listed
/// twice is an unreachable pattern (denied).
macro_rules! every_variant {
    ($(
        $(#[doc = $doc:literal])*
        fn $family:ident() {
            $( service: { $( $sv:ident $sargs:tt => $scode:ident $sreason:literal [$($skey:literal),*], )* } )?
            $( ledger: { $( $lv:ident $largs:tt => $lcode:ident $lreason:literal [$($lkey:literal),*], )* } )?
        }
    )*) => {
        #[deny(unreachable_patterns)]
        fn _one_sample_per_variant(err: &ServiceError) {
            match err {
                $(
                    $( $( ServiceError::$sv { .. } => {} )* )?
                    $( $( ServiceError::Ledger(LedgerError::$lv { .. }) => {} )* )?
                )*
            }
        }
        $(
            $(#[doc = $doc])*
            fn $family() -> Vec<Case> {
                vec![
                    $( $( Case {
                        err: ServiceError::$sv $sargs,
                        code: Code::$scode,
                        reason: $sreason,
                        keys: &[$($skey),*],
                    }, )* )?
                    $( $( Case {
                        err: ServiceError::Ledger(LedgerError::$lv $largs),
                        code: Code::$lcode,
                        reason: $lreason,
                        keys: &[$($lkey),*],
                    }, )* )?
                ]
            }
        )*
        /// The samples of every family, one after another.
        fn every_case() -> Vec<Case> {
            [$($family()),*].into_iter().flatten().collect()
        }
    };
}

every_variant! {
    /// The service's own refusals and failures, before or after the ledger.
    fn request_cases() {
        service: {
            Invalid(InvalidField::new("amount", "is 0"))
                => InvalidArgument "INVALID_FIELD" ["field"],
            MalformedRequest("request body is empty".into())
                => InvalidArgument "MALFORMED_REQUEST" [],
            MalformedEvent("rawPath \"x\" is not a valid URI path".into())
                => InvalidArgument "MALFORMED_EVENT" [],
            TokenMissing {}
                => Unauthenticated "TOKEN_MISSING" [],
            TokenInvalid {}
                => Unauthenticated "TOKEN_INVALID" [],
            NotAccountReader { caller: "bob".into(), account_id: "alice".into() }
                => PermissionDenied "NOT_ACCOUNT_OWNER" ["account_id"],
            AdminOnly { field: "initial_balance" }
                => PermissionDenied "ADMIN_ONLY" ["field"],
            Deadline(CutOff::Payment)
                => DeadlineExceeded "DEADLINE_EXCEEDED" [],
            RequestTooLarge { limit_bytes: 16384 }
                => ResourceExhausted "REQUEST_TOO_LARGE" ["limit_bytes"],
            CompressionUnsupported {}
                => Unimplemented "COMPRESSION_UNSUPPORTED" [],
            ReplyFailed {}
                => Unavailable "REPLY_FAILED" [],
        }
    }

    /// The ledger's refusals about an account and its balance.
    fn account_cases() {
        ledger: {
            AccountExists("a".into())
                => AlreadyExists "ACCOUNT_EXISTS" ["account_id"],
            AccountNotFound { role: "sender", account_id: "a".into() }
                => NotFound "ACCOUNT_NOT_FOUND" ["account_id", "role"],
            CurrencyMismatch {
                role: "recipient",
                account_id: "a".into(),
                account_currency: "USD".into(),
                currency: "EUR".into(),
            } => FailedPrecondition "CURRENCY_MISMATCH"
                ["account_id", "role", "account_currency", "currency"],
            InsufficientFunds {
                account_id: "a".into(),
                what: "payment",
                currency: "EUR".into(),
                available_minor: 1,
                held_minor: 0,
                amount_minor: 2,
            } => FailedPrecondition "INSUFFICIENT_FUNDS"
                ["account_id", "currency", "available_minor", "held_minor", "needed_minor"],
            SpreadOverShards { account_id: "a".into(), shards_max: 48, payable_minor: 5 }
                => FailedPrecondition "SPREAD_OVER_SHARDS"
                ["account_id", "shards_max", "payable_minor"],
            BalanceLimit { account_id: "a".into() }
                => FailedPrecondition "BALANCE_LIMIT" ["account_id", "limit_minor"],
            ShardsCannotShrink { account_id: "a".into(), shards: 8, asked: 2 }
                => FailedPrecondition "SHARDS_CANNOT_SHRINK" ["account_id", "balance_shards", "asked"],
            ShardOverShare {
                account_id: "a".into(),
                shard: 0,
                balance_minor: 9,
                share_minor: 5,
                currency: "EUR".into(),
            } => FailedPrecondition "SHARD_OVER_SHARE"
                ["account_id", "shard", "balance_minor", "share_minor", "currency"],
        }
    }

    /// The ledger's refusals about idempotency keys, owners and lookups.
    fn key_cases() {
        ledger: {
            IdempotencyKeyReused { key: "k".into(), sender_id: "a".into(), stored_kind: "hold" }
                => AlreadyExists "IDEMPOTENCY_KEY_REUSED" ["idempotency_key", "sender_id", "stored_kind"],
            KeyFenced { sender_id: "a".into(), key: "k".into() }
                => FailedPrecondition "KEY_FENCED" ["sender_id", "idempotency_key"],
            FencedNotFound { sender_id: "a".into(), key: "k".into() }
                => NotFound "KEY_FENCED" ["sender_id", "idempotency_key"],
            NotOwner { account_id: "a".into() }
                => PermissionDenied "NOT_ACCOUNT_OWNER" ["account_id"],
            NotAllowed { what: "capturing hold h".into(), who: "its recipient's owner" }
                => PermissionDenied "NOT_ALLOWED" [],
            PaymentNotFound { what: "hold", name: "h".into() }
                => NotFound "PAYMENT_NOT_FOUND" ["what"],
        }
    }

    /// The ledger's refusals about holds and refunds.
    fn hold_cases() {
        ledger: {
            HoldExpired { hold_id: "h".into(), expired_at: "2026-12-06T19:00:00Z".into() }
                => FailedPrecondition "HOLD_EXPIRED" ["hold_id", "expired_at"],
            HoldCaptured {
                hold_id: "h".into(),
                action: "voided",
                captured_minor: 5,
                currency: "EUR".into(),
            } => FailedPrecondition "HOLD_ALREADY_CAPTURED"
                ["hold_id", "captured_minor", "currency"],
            HoldVoided { hold_id: "h".into(), action: "captured" }
                => FailedPrecondition "HOLD_VOIDED" ["hold_id"],
            CaptureExceedsHold {
                hold_id: "h".into(),
                held_minor: 5,
                amount_minor: 6,
                currency: "EUR".into(),
            } => FailedPrecondition "CAPTURE_EXCEEDS_HOLD"
                ["hold_id", "held_minor", "requested_minor", "currency"],
            TooManyHolds { account_id: "a".into(), limit: 32 }
                => ResourceExhausted "TOO_MANY_OPEN_HOLDS" ["account_id", "limit"],
            RefundExceedsPayment {
                transaction_id: "t".into(),
                amount_minor: 10,
                refunded_minor: 4,
                requested_minor: 7,
                currency: "EUR".into(),
            } => FailedPrecondition "REFUND_EXCEEDS_PAYMENT"
                ["transaction_id", "amount_minor", "refunded_minor", "refundable_minor",
                 "requested_minor", "currency"],
            NotRefundable { transaction_id: "t".into(), why: "it is a refund" }
                => FailedPrecondition "NOT_REFUNDABLE" ["transaction_id"],
        }
    }

    /// The ledger's limits, and its failures.
    fn limit_cases() {
        ledger: {
            ResumeTooOld { account_id: "a".into(), behind: 10_001, limit: 10_000 }
                => OutOfRange "RESUME_TOKEN_TOO_OLD" ["account_id", "behind", "limit"],
            Contended { attempts: 10 }
                => Aborted "CONTENDED" ["attempts"],
            OutcomeUnknown { cause: "timeout".into() }
                => Unavailable "OUTCOME_UNKNOWN" [],
            TooManyAccounts { owner: "o".into(), limit: 1000 }
                => ResourceExhausted "TOO_MANY_ACCOUNTS" ["owner", "limit"],
            Unavailable("x".into())
                => Unavailable "LEDGER_UNAVAILABLE" [],
            Internal("x".into())
                => Internal "INTERNAL" [],
            Rejected { code: "ValidationError", detail: "item 1".into() }
                => Internal "INTERNAL" [],
        }
    }
}

#[test]
fn every_variant_has_its_code_reason_and_metadata() {
    for case in every_case() {
        let name = format!("{:?}", case.err);
        let status = Status::from(case.err);
        assert_eq!(status.code(), case.code, "{name}");
        let info = status.get_error_details().error_info().cloned();
        let info = info.unwrap_or_else(|| panic!("{name}: no ErrorInfo"));
        assert_eq!(info.reason, case.reason, "{name}");
        assert_eq!(info.domain, ERROR_DOMAIN, "{name}");
        let mut keys: Vec<&str> = info.metadata.keys().map(String::as_str).collect();
        let mut expected = case.keys.to_vec();
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected, "{name}");
        assert!(!status.message().is_empty(), "{name}");
    }
}

#[test]
fn unauthenticated_is_bearer_and_deadlines_say_what_may_have_happened() {
    for err in [ServiceError::TokenMissing, ServiceError::TokenInvalid] {
        let status = Status::from(err);
        assert!(status.message().starts_with("Bearer "), "{status:?}");
    }
    // CutOff is inside one variant: an exhaustive match per value.
    for cut_off in [
        CutOff::Payment,
        CutOff::Account,
        CutOff::Hold,
        CutOff::Read,
        CutOff::Finalize,
        CutOff::Shards,
    ] {
        let says = match cut_off {
            CutOff::Payment => "retry with the same idempotency key",
            CutOff::Account => "send the same AddAccount again",
            CutOff::Hold => "look the hold up with GetPayment",
            CutOff::Read => "nothing was changed",
            CutOff::Finalize => "send the same GetPayment with finalize again",
            CutOff::Shards => "send the same SetBalanceShards again",
        };
        let status = Status::from(ServiceError::Deadline(cut_off));
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert!(status.message().contains(says), "{}", status.message());
    }
}

#[test]
fn a_field_error_names_the_field_twice() {
    let invalid = Status::from(ServiceError::from(InvalidField::new("amount", "is 0")));
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(invalid.message(), "amount: is 0");
    let details = invalid.get_error_details();
    assert_eq!(details.error_info().unwrap().metadata["field"], "amount");
    let violations = &details.bad_request().unwrap().field_violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "amount");
    assert_eq!(violations[0].description, "is 0");
}

#[test]
fn paying_from_and_reading_an_account_not_yours_differ_in_words_only() {
    let paying = Status::from(LedgerError::NotOwner {
        account_id: "alice".into(),
    });
    let reading = Status::from(ServiceError::NotAccountReader {
        caller: "bob".into(),
        account_id: "alice".into(),
    });
    assert_eq!(
        reading.message(),
        "bob may not read account \"alice\": only its owner or an admin may"
    );
    for status in [paying, reading] {
        assert_eq!(status.code(), Code::PermissionDenied);
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, "NOT_ACCOUNT_OWNER");
        assert_eq!(info.metadata["account_id"], "alice");
    }
}

/// `InvalidArgument` as docs/api.md spells it: `INVALID_ARGUMENT`.
fn screaming(code: Code) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The rows of docs/api.md's "Reasons a program can read": the reasons
/// of a row, its code, and the metadata keys it names. A reason sent with
/// two codes (KEY_FENCED) has a row for each.
fn documented_reasons() -> Vec<(Vec<String>, String, Vec<String>)> {
    let page = include_str!("../../docs/api.md");
    let start = page
        .find("\n## Reasons a program can read\n")
        .expect("docs/api.md has the reasons table")
        + 1;
    let section = &page[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let backticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    };
    section[..end]
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            (
                backticked(cells[1]),
                cells[2].to_owned(),
                backticked(cells[3]),
            )
        })
        .collect()
}

#[test]
fn the_api_page_lists_every_reason_with_its_code_and_metadata() {
    let rows = documented_reasons();
    let cases = every_case();
    for case in &cases {
        let listed: Vec<_> = rows
            .iter()
            .filter(|(reasons, ..)| reasons.iter().any(|r| r == case.reason))
            .collect();
        assert!(
            !listed.is_empty(),
            "docs/api.md does not list {}",
            case.reason
        );
        let row = listed
            .iter()
            .find(|row| row.1 == screaming(case.code))
            .unwrap_or_else(|| {
                panic!(
                    "docs/api.md lists {} with {:?}, not with {}",
                    case.reason,
                    listed.iter().map(|row| &row.1).collect::<Vec<_>>(),
                    screaming(case.code)
                )
            });
        for key in case.keys {
            assert!(
                row.2.iter().any(|k| k == key),
                "docs/api.md's row of {} lacks metadata {key}",
                case.reason
            );
        }
    }
    for (reasons, code, keys) in &rows {
        for reason in reasons {
            assert!(
                cases
                    .iter()
                    .any(|case| case.reason == reason && screaming(case.code) == *code),
                "docs/api.md lists {reason} with {code}, which no error answers with"
            );
        }
        for key in keys {
            assert!(
                cases
                    .iter()
                    .any(|case| reasons.iter().any(|r| r == case.reason)
                        && case.keys.contains(&key.as_str())),
                "docs/api.md names metadata {key} for {reasons:?}, which none of them sends"
            );
        }
    }
}

#[test]
fn insufficient_funds_says_what_is_available_in_the_currency() {
    let status = Status::from(LedgerError::InsufficientFunds {
        account_id: "alice".into(),
        what: "payment",
        currency: "EUR".into(),
        available_minor: 3766,
        held_minor: 500,
        amount_minor: 100_000,
    });
    assert_eq!(
        status.message(),
        "insufficient funds: account \"alice\" has 37.66 EUR available (5.00 EUR more is held), the payment needs 1000.00 EUR"
    );
    let info = status.get_error_details().error_info().cloned().unwrap();
    assert_eq!(info.reason, "INSUFFICIENT_FUNDS");
    assert_eq!(info.domain, ERROR_DOMAIN);
    assert_eq!(info.metadata["available_minor"], "3766");
    assert_eq!(info.metadata["needed_minor"], "100000");
    assert_eq!(info.metadata["currency"], "EUR");
}

#[test]
fn outages_and_bugs_carry_a_reason_but_not_their_cause() {
    for (err, reason) in [
        (
            LedgerError::Unavailable("table t at http://x".into()),
            "LEDGER_UNAVAILABLE",
        ),
        (LedgerError::Internal("table t".into()), "INTERNAL"),
    ] {
        let status = Status::from(err);
        assert!(
            !status.message().contains("table t"),
            "{}",
            status.message()
        );
        assert_eq!(
            status.get_error_details().error_info().unwrap().reason,
            reason
        );
    }
}
