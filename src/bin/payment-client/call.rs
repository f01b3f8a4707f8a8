//! What every command that calls the service shares: the transport bound,
//! the request with its deadline and token, idempotency keys, replays and
//! amounts in the currency of what they are of.

use crate::args::Cli;
use payment::domain::parse_money;
use payment::pb::{self, payment_service_client::PaymentServiceClient};
use tonic::client::GrpcService;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A transport the generated client can call over: native gRPC or
/// gRPC-Web (see `payment::client`).
pub trait Channel:
    GrpcService<
        tonic::body::Body,
        Error: Into<BoxError>,
        ResponseBody: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError> + Send>
                          + Send
                          + 'static,
    >
{
}

impl<T> Channel for T where
    T: GrpcService<
            tonic::body::Body,
            Error: Into<BoxError>,
            ResponseBody: http_body::Body<Data = bytes::Bytes, Error: Into<BoxError> + Send>
                              + Send
                              + 'static,
        >
{
}

/// The client every command calls the service with.
pub type Client<T> = PaymentServiceClient<T>;

/// `message` with the deadline (--timeout) and the bearer token (--token).
pub fn request<T>(message: T, cli: &Cli) -> Result<tonic::Request<T>, BoxError> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(cli.timeout);
    if let Some(token) = cli.token.as_deref().filter(|t| !t.trim().is_empty()) {
        let value = format!("Bearer {}", token.trim())
            .parse()
            .map_err(|_| "--token is not a valid header value")?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// "paid", or on a replay "already paid (replayed, nothing moved)".
pub fn replay_verb(replayed: bool, done: &str) -> String {
    if replayed {
        format!("already {done} (replayed, nothing moved)")
    } else {
        done.to_owned()
    }
}

/// The idempotency key given, or a new one, printed so that the caller can
/// retry with it.
pub fn fresh_key(key: Option<&str>, as_json: bool) -> String {
    let key = key.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    if !as_json {
        println!("idempotency key: {key}");
    }
    key
}

/// A decimal amount typed for `flag` (e.g. "--amount") in `currency`, in
/// minor units.
pub fn money_arg(flag: &str, text: &str, currency: &str) -> Result<i64, BoxError> {
    Ok(parse_money(text, currency).map_err(|e| format!("{flag}: {e}"))?)
}

/// A decimal --amount in the currency of the payment or hold it is of
/// (looked up), in minor units; 0 (all of it) when omitted.
pub async fn amount_of<T: Channel>(
    client: &mut Client<T>,
    amount: Option<&str>,
    payment: &Option<pb::PaymentRef>,
    cli: &Cli,
) -> Result<i64, BoxError> {
    let Some(text) = amount else {
        return Ok(0);
    };
    let found = client
        .get_payment(request(
            pb::GetPaymentRequest {
                payment: payment.clone(),
                finalize: false,
            },
            cli,
        )?)
        .await?
        .into_inner();
    let currency = found
        .hold
        .map(|h| h.currency)
        .or(found.transaction.map(|t| t.currency))
        .ok_or("the service found no such payment or hold")?;
    money_arg("--amount", text, &currency)
}

#[cfg(test)]
mod tests {
    use super::money_arg;

    /// The client reads typed amounts by the rule the web app follows:
    /// testdata/money-vectors.json, which both test suites read.
    #[test]
    fn typed_amounts_follow_the_shared_money_vectors() {
        let vectors: serde_json::Value =
            serde_json::from_str(include_str!("../../../testdata/money-vectors.json"))
                .expect("money vectors are JSON");
        for case in vectors["parse"].as_array().expect("parse vectors") {
            let text = case["text"].as_str().expect("text");
            let currency = case["currency"].as_str().expect("currency");
            let read = money_arg("--amount", text, currency).map_err(|e| e.to_string());
            match case["minor"].as_str() {
                Some(minor) => assert_eq!(read, Ok(minor.parse().expect("i64")), "{case}"),
                None => {
                    let err = read.expect_err(text);
                    assert!(err.starts_with("--amount: "), "{err}");
                }
            }
        }
    }
}
