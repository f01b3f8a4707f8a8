//! An API Gateway HTTP API (payload format 2.0) event, as JSON, through the
//! Lambda adapter: lambda_http's event conversion, `payment::lambda::handle`
//! and the real HTTP stack (CORS, gRPC-Web, request guard) with a dummy in
//! place of the tonic routes. See `payment_ledger_fuzz` for the properties.
//!
//! Seeds: the events of events/ plus variants (corpus/grpc_web_event/).
//! The dummy's reply shape is picked by an `x-fuzz-response` header in the
//! event; `x-fuzz-echo*` headers come back as trailers.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};

fuzz_target!(init: payment_ledger_fuzz::init(), |data: &[u8]| -> Corpus {
    let text = String::from_utf8_lossy(data);
    match payment_ledger_fuzz::parse_event(&text) {
        Some(Ok(request)) => {
            payment_ledger_fuzz::exercise(request);
            Corpus::Keep
        }
        // Not an event, or one lambda_http cannot convert: nothing of ours ran.
        Some(Err(())) => Corpus::Keep,
        None => Corpus::Reject,
    }
});
