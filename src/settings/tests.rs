use super::*;
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

fn from(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::from_lookup(|name| map.get(name).cloned())
}

#[test]
fn every_variable_is_read_once_and_listed() {
    let asked = Mutex::new(Vec::new());
    Settings::from_lookup(|name| {
        asked.lock().unwrap().push(name.to_owned());
        None
    })
    .unwrap();
    let mut asked = asked.into_inner().unwrap();
    asked.sort();
    let mut listed: Vec<String> = VARIABLES.iter().map(|v| (*v).to_owned()).collect();
    listed.sort();
    assert_eq!(asked, listed);
}

#[test]
fn nothing_set_is_every_default() {
    let settings = from(&[]).unwrap();
    let default = Settings::default();
    assert_eq!(settings.ledger.tables.accounts, "payment-accounts");
    assert_eq!(settings.ledger.tables.ledger, "payment-ledger");
    assert_eq!(settings.ledger.promotion, Some(Promotion::default()));
    assert_eq!(settings.ledger.promotion, default.ledger.promotion);
    assert_eq!(settings.ledger.test_clock_skew_ms, 0);
    assert_eq!(settings.auth.mode, AuthMode::Jwt);
    assert!(settings.auth.jwks.is_none() && settings.auth.dev_secret.is_none());
    assert!(settings.auth.issuer.is_none() && settings.auth.audiences.is_empty());
    assert!(!settings.auth.allow_dev_secret_with_jwks);
    assert_eq!(settings.cors_origins, "");
    assert_eq!(settings.log_format, LogFormat::Text);
    assert_eq!(settings.metrics, MetricsSettings::default());
    assert_eq!(
        (
            settings.metrics.namespace.as_str(),
            settings.metrics.service.as_str()
        ),
        ("PaymentService", "payment")
    );
    assert!(settings.metrics.emf);
    assert_eq!(settings.event_bus, None);
    let err = settings.event_bus().unwrap_err().to_string();
    assert!(err.starts_with(EVENT_BUS_ENV), "{err}");
    // An empty value is an unset one.
    let empty: Vec<(&str, &str)> = VARIABLES.iter().map(|v| (*v, "")).collect();
    let settings = from(&empty).unwrap();
    assert_eq!(settings.ledger.tables.accounts, "payment-accounts");
    assert_eq!(settings.ledger.test_clock_skew_ms, 0);
    assert_eq!(settings.metrics, MetricsSettings::default());
}

#[test]
fn values_are_read_as_documented() {
    let settings = from(&[
        (ACCOUNTS_TABLE_ENV, "a"),
        (LEDGER_TABLE_ENV, "l"),
        (PROMOTE_SHARDS_ENV, " 16 "),
        (TEST_CLOCK_SKEW_ENV, "-250"),
        (AUTH_MODE_ENV, "apigateway"),
        (JWT_AUDIENCE_ENV, "one, two"),
        (CORS_ORIGINS_ENV, "http://localhost:5173"),
        (LOG_FORMAT_ENV, "json"),
        (METRICS_ENV, " OFF "),
        (METRICS_NAMESPACE_ENV, " Space "),
        (METRICS_SERVICE_ENV, "svc"),
        (EVENT_BUS_ENV, "bus"),
    ])
    .unwrap();
    assert_eq!(
        (
            settings.ledger.tables.accounts.as_str(),
            settings.ledger.tables.ledger.as_str()
        ),
        ("a", "l")
    );
    assert_eq!(settings.ledger.promotion.map(|p| p.shards), Some(16));
    assert_eq!(settings.ledger.test_clock_skew_ms, -250);
    assert_eq!(settings.auth.mode, AuthMode::ApiGateway);
    assert_eq!(settings.auth.audiences, ["one", "two"]);
    assert_eq!(settings.cors_origins, "http://localhost:5173");
    assert_eq!(settings.log_format, LogFormat::Json);
    assert!(!settings.metrics.emf);
    assert_eq!(settings.metrics.namespace, "Space");
    assert_eq!(settings.metrics.service, "svc");
    assert_eq!(settings.event_bus().unwrap(), "bus");
    for off in ["off", "0"] {
        let settings = from(&[(PROMOTE_SHARDS_ENV, off)]).unwrap();
        assert_eq!(settings.ledger.promotion, None, "{off}");
    }
    // Only `json` (exactly) is JSON; only `off` turns EMF off.
    assert_eq!(
        from(&[(LOG_FORMAT_ENV, "JSON")]).unwrap().log_format,
        LogFormat::Text
    );
    assert!(from(&[(METRICS_ENV, "on")]).unwrap().metrics.emf);
    // A blank bus is no bus.
    assert_eq!(from(&[(EVENT_BUS_ENV, "  ")]).unwrap().event_bus, None);
}

#[test]
fn a_bad_value_is_refused_with_its_name() {
    for (name, bad) in [
        (PROMOTE_SHARDS_ENV, "1"),
        (PROMOTE_SHARDS_ENV, "65"),
        (PROMOTE_SHARDS_ENV, "many"),
        (PROMOTE_SHARDS_ENV, "-2"),
        (TEST_CLOCK_SKEW_ENV, "60001"),
        (TEST_CLOCK_SKEW_ENV, "-60001"),
        (TEST_CLOCK_SKEW_ENV, "1.5"),
        (AUTH_MODE_ENV, "none"),
        (JWT_AUDIENCE_ENV, ","),
        (DEV_JWT_SECRET_ENV, "short"),
        (ALLOW_DEV_SECRET_WITH_JWKS_ENV, "yes"),
        (JWKS_URL_ENV, "http://idp.example.com/jwks.json"),
        (CORS_ORIGINS_ENV, "app.example.com"),
        (CORS_ORIGINS_ENV, "https://app.example.com/path"),
    ] {
        let err = from(&[(name, bad)]).expect_err(bad).to_string();
        assert!(err.contains(name), "{name}={bad}: {err}");
    }
    let long = "i".repeat(verify::SETTING_BYTES_MAX + 1);
    let err = from(&[(JWT_ISSUER_ENV, &long)]).unwrap_err().to_string();
    assert!(err.starts_with(JWT_ISSUER_ENV), "{err}");
    let err = from(&[(JWKS_URL_ENV, "https://a/jwks"), (JWKS_FILE_ENV, "/jwks")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(JWKS_URL_ENV) && err.contains(JWKS_FILE_ENV),
        "{err}"
    );
    let secret = "0123456789abcdef0123456789abcdef";
    let settings = from(&[(DEV_JWT_SECRET_ENV, secret)]).unwrap();
    assert_eq!(settings.auth.dev_secret.as_deref(), Some(secret));
    assert!(!format!("{settings:?}").contains(secret), "Debug hides it");
}

/// The backquoted names in the first cell of each row of the
/// configuration table of docs/operating.md, by section (the bold rows).
fn documented() -> Vec<(String, Vec<String>, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operating.md");
    let text = std::fs::read_to_string(path).expect("docs/operating.md");
    let table = text
        .split("## Configuration")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Configuration section");
    let mut rows = Vec::new();
    let mut section = String::new();
    for line in table.lines().filter(|l| l.starts_with('|')) {
        let first = line.split('|').nth(1).unwrap_or("").trim();
        if let Some(bold) = first.strip_prefix("**") {
            section = bold.trim_end_matches("**").to_owned();
            continue;
        }
        let names = first
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        rows.push((section.clone(), names, first.to_owned()));
    }
    rows
}

#[test]
fn the_docs_table_lists_every_variable() {
    let rows = documented();
    let all: BTreeSet<&str> = rows
        .iter()
        .flat_map(|(_, names, _)| names.iter().map(String::as_str))
        .collect();
    for name in VARIABLES.iter().chain([&FUZZ_TRACE_ENV]) {
        assert!(
            all.contains(name),
            "{name} is read in src/settings.rs but not in the table of docs/operating.md"
        );
    }
    // And the other way: every PAYMENT_ variable the table gives the
    // service is read here, or by clap with the flag the row names.
    for (section, names, cell) in &rows {
        if section != "The service" {
            continue;
        }
        for name in names.iter().filter(|n| n.starts_with("PAYMENT_")) {
            assert!(
                VARIABLES.contains(&name.as_str()) || cell.contains("`--"),
                "docs/operating.md lists {name}, which nothing reads"
            );
        }
    }
}
