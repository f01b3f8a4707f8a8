//! Integration tests: the real server on 127.0.0.1, DynamoDB Local behind it.
//! One binary (faster to link), one module per area.

mod audit;
mod auth;
mod bench;
mod concurrency;
mod faults;
mod harness;
mod helpers;
mod lambda;
mod lambda_watch;
mod matrix;
mod rules;
mod transport;
