//! A payment ledger on DynamoDB, served over gRPC and gRPC-Web.
//!
//! Data flows one way: transport (`server`, the Lambda) → [`service`] →
//! [`domain`] checks → [`ledger`] → DynamoDB.

pub mod auth;
pub mod client;
pub mod config;
pub mod domain;
pub mod error;
pub mod guard;
pub mod lambda;
pub mod ledger;
pub mod server;
pub mod service;

/// The generated protobuf and gRPC code of proto/payment/v1.
pub mod pb {
    #![allow(clippy::all)]
    tonic::include_proto!("payment.v1");

    /// The encoded descriptors of proto/, served by gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("payment_descriptor");
}
