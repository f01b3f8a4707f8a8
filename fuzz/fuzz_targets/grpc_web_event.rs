//! An API Gateway HTTP API (payload format 2.0) event, as JSON, through the
//! Lambda adapter: `payment::lambda::handle_event` (its own event
//! conversion, the handler, the API Gateway response) and the real HTTP stack (CORS, gRPC-Web, request guard) with a dummy in
//! place of the tonic routes. See `payment_ledger_fuzz` for the properties.
//!
//! Seeds: the events of events/ plus variants (corpus/grpc_web_event/).
//! The dummy's reply shape is picked by an `x-fuzz-response` header in the
//! event; `x-fuzz-echo*` headers come back as trailers.
#![no_main]

use libfuzzer_sys::{Corpus, fuzz_target};

fuzz_target!(|data: &[u8]| -> Corpus {
    // The runtime hands the function any JSON value: anything that parses
    // as JSON is an event.
    match serde_json::from_slice::<serde_json::Value>(data) {
        Ok(event) => {
            payment_ledger_fuzz::exercise_event(event);
            Corpus::Keep
        }
        Err(_) => Corpus::Reject,
    }
});
