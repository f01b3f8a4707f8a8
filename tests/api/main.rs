//! Integration tests: the real server on 127.0.0.1, DynamoDB Local behind it.
//! One binary (faster to link), one module per area.

// The tests stop the tools they start by process group (libc::kill) and tie
// them to their own life (prctl in pre_exec): the crate denies unsafe code
// everywhere else.
#![allow(unsafe_code)]

mod audit;
mod auth;
mod bench;
mod buf_curl;
mod check;
mod cli;
mod cloud;
mod concurrency;
mod cors;
mod deployed;
mod events;
mod faults;
mod fence;
mod harness;
mod helpers;
mod holds;
mod hot;
mod lambda;
mod lambda_watch;
#[path = "../../src/bin/payment-check/local_dynamodb.rs"]
mod local_dynamodb;
mod matrix;
mod metrics;
#[path = "../../src/bin/payment-bench/otlp_receiver.rs"]
mod otlp_receiver;
mod reasons;
mod replays;
mod reshard;
mod rewrite_proxy;
mod rules;
mod tokens;
mod traces;
mod transport;
mod watch;
