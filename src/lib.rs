//! A payment ledger on DynamoDB, served over gRPC and gRPC-Web.
//!
//! Data flows one way: transport (`server`, the Lambda) → [`service`] →
//! [`domain`] checks → [`ledger`] → DynamoDB.
//!
//! Safe Rust only: the one unsafe block of the project (a `pre_exec` hook)
//! is in the history checker's binary, `src/bin/payment-check/`.

#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
pub mod config;
pub mod connection;
pub mod domain;
pub mod error;
pub mod events;
pub mod guard;
pub mod lambda;
pub mod ledger;
pub mod server;
pub mod service;
pub mod settings;
pub mod stack;
pub mod telemetry;

/// The generated protobuf and gRPC code of proto/payment/v1.
pub mod pb {
    #![allow(clippy::all)]
    tonic::include_proto!("payment.v1");

    /// The encoded descriptors of proto/, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("payment_descriptor");

    /// One method of a service in proto/, as build.rs read it from the
    /// compiled descriptors: the contract, not a list kept by hand.
    #[derive(Debug, Clone, Copy)]
    pub struct Method {
        /// The HTTP/2 path of a call, e.g. `/payment.v1.PaymentService/CaptureHold`.
        pub path: &'static str,
        /// The service's full name, e.g. `payment.v1.PaymentService`.
        pub service: &'static str,
        /// The method's name, e.g. `CaptureHold`.
        pub name: &'static str,
        /// The request message's full name, e.g. `payment.v1.CaptureHoldRequest`.
        pub input_type: &'static str,
        /// Whether the client sends a stream of requests.
        pub client_streaming: bool,
        /// Whether the server answers with a stream.
        pub server_streaming: bool,
        /// Decodes a message as the request type (the generated prost type).
        pub decode: fn(bytes::Bytes) -> Result<(), prost::DecodeError>,
    }

    fn decodes<M: prost::Message + Default>(
        message: bytes::Bytes,
    ) -> Result<(), prost::DecodeError> {
        M::decode(message).map(drop)
    }

    include!(concat!(env!("OUT_DIR"), "/payment_methods.rs"));
}
