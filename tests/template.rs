//! template.yaml (the AWS SAM deployment) checked against the code: the
//! DynamoDB tables carry exactly the keys the ledger uses, the function is
//! told their names through the environment variables the code reads, its IAM
//! policy grants exactly the DynamoDB actions the ledger needs on those two
//! tables and nothing broader, the HTTP API routes the gRPC service's path to
//! the function, and every route is behind the JWT authorizer whose claims
//! the function trusts.

use payment::config::{ACCOUNTS_TABLE_ENV, LEDGER_TABLE_ENV};
use payment::ledger::{Ledger, Tables};
use payment::pb::payment_service_server::SERVICE_NAME;
use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeSet;

/// The function's logical id in template.yaml.
const FUNCTION: &str = "PaymentFunction";

/// The only actions the function may have on DynamoDB. TransactWriteItems is
/// authorized through the per-item PutItem/UpdateItem/ConditionCheckItem
/// actions.
const DYNAMODB_ACTIONS: [&str; 6] = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
];

/// The DynamoDB actions the ledger's code calls, read from its source
/// (src/ledger/*.rs): each SDK operation (`.get_item()` is GetItem, ...),
/// and for TransactWriteItems the per-item actions it is authorized through
/// (`Put::builder()` is PutItem, `Update::builder()` UpdateItem, ...). Two
/// calls are not the function's and are left out by file: the table setup
/// in layout.rs (CreateTable: `payment-server --create-tables` and tests;
/// deployed tables come from template.yaml) and the audit's Scan in
/// audit.rs (run by `payment-client audit` with an operator's credentials).
fn ledger_actions() -> BTreeSet<String> {
    const OPERATIONS: [(&str, &str); 12] = [
        (".get_item()", "GetItem"),
        (".put_item()", "PutItem"),
        (".update_item()", "UpdateItem"),
        (".delete_item()", "DeleteItem"),
        (".batch_get_item()", "BatchGetItem"),
        (".batch_write_item()", "BatchWriteItem"),
        (".transact_get_items()", "TransactGetItems"),
        (".query()", "Query"),
        (".scan()", "Scan"),
        (".create_table()", "CreateTable"),
        (".describe_table()", "DescribeTable"),
        (".delete_table()", "DeleteTable"),
    ];
    const TRANSACT_ITEMS: [(&str, &str); 4] = [
        ("Put::builder()", "PutItem"),
        ("Update::builder()", "UpdateItem"),
        ("Delete::builder()", "DeleteItem"),
        ("ConditionCheck::builder()", "ConditionCheckItem"),
    ];
    const NOT_THE_FUNCTIONS: [(&str, &str); 2] =
        [("layout.rs", "CreateTable"), ("audit.rs", "Scan")];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ledger");
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {dir}: {e}")) {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).expect("source");
        sources.push((name, text));
    }
    let files = sources.len();
    // Transaction items are built in one file and sent in another (every
    // operation builds its items; `round` sends them): a builder anywhere
    // counts once any file sends a transaction.
    let transact = sources
        .iter()
        .any(|(_, text)| text.contains(".transact_write_items()"));
    let mut actions = BTreeSet::new();
    for (name, text) in &sources {
        for (call, action) in OPERATIONS {
            if text.contains(call) && !NOT_THE_FUNCTIONS.contains(&(name.as_str(), action)) {
                actions.insert(format!("dynamodb:{action}"));
            }
        }
        // Item kinds are built for transactions (and PutItem's own Put
        // item is the same action).
        for (builder, action) in TRANSACT_ITEMS {
            if text.contains(builder) && (transact || text.contains(".put_item()")) {
                actions.insert(format!("dynamodb:{action}"));
            }
        }
    }
    assert!(files >= 5, "read only {files} files of {dir}");
    assert!(
        actions.contains("dynamodb:GetItem") && actions.contains("dynamodb:PutItem"),
        "the scan of {dir} found too little: {actions:?}"
    );
    actions
}

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"))
}

/// The indexes from the library: [accounts, ledger], each a list of
/// (index name, [(attribute, "HASH" | "RANGE")]).
#[allow(clippy::type_complexity)]
fn index_schemas() -> [Vec<(String, Vec<(String, String)>)>; 2] {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .build();
    let ledger = Ledger::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        Tables {
            accounts: "a".into(),
            ledger: "l".into(),
        },
    );
    ledger.index_schemas().map(|indexes| {
        indexes
            .iter()
            .map(|(name, keys)| {
                (
                    name.to_string(),
                    keys.iter()
                        .map(|(a, k)| (a.to_string(), k.to_string()))
                        .collect(),
                )
            })
            .collect()
    })
}

/// The key schemas from the library: [accounts, ledger], each a list of
/// (attribute, "HASH" | "RANGE").
fn key_schemas() -> [Vec<(String, String)>; 2] {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let tables = Tables {
        accounts: "a".into(),
        ledger: "l".into(),
    };
    let ledger = Ledger::new(client, tables);
    let [(accounts_name, accounts), (ledger_name, ledger_keys)] = ledger.key_schemas();
    assert_eq!(
        (accounts_name, ledger_name),
        ("a", "l"),
        "key_schemas() lists the accounts table first, then the ledger table"
    );
    let owned = |keys: &[(&str, &str)]| {
        keys.iter()
            .map(|(name, kind)| (name.to_string(), kind.to_string()))
            .collect::<Vec<_>>()
    };
    [owned(accounts), owned(ledger_keys)]
}

fn mapping<'a>(value: &'a Value, what: &str) -> &'a Mapping {
    value
        .as_mapping()
        .unwrap_or_else(|| panic!("{what} is not a mapping: {value:?}"))
}

fn get<'a>(value: &'a Value, key: &str, what: &str) -> &'a Value {
    mapping(value, what)
        .get(key)
        .unwrap_or_else(|| panic!("{what} has no {key}"))
}

fn string<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

fn sequence<'a>(value: &'a Value, what: &str) -> &'a [Value] {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("{what} is not a list: {value:?}"))
}

fn resource<'a>(template: &'a Value, logical_id: &str) -> &'a Value {
    get(
        get(template, "Resources", "template"),
        logical_id,
        "Resources",
    )
}

fn resource_type<'a>(template: &'a Value, logical_id: &str) -> &'a str {
    string(
        get(resource(template, logical_id), "Type", logical_id),
        logical_id,
    )
}

fn properties<'a>(template: &'a Value, logical_id: &str) -> &'a Value {
    get(resource(template, logical_id), "Properties", logical_id)
}

/// The argument of an intrinsic function written either as a short tag
/// (`!Ref X`) or as a one-key mapping (`Ref: X`, `Fn::GetAtt: [X, Arn]`).
fn intrinsic<'a>(value: &'a Value, tag: &str, long_name: &str) -> Option<&'a Value> {
    match value {
        Value::Tagged(tagged) if tagged.tag == tag => Some(&tagged.value),
        Value::Mapping(map) if map.len() == 1 => map.get(long_name),
        _ => None,
    }
}

/// The logical id that `value` references with `!Ref`, if it is a Ref.
fn ref_target(value: &Value) -> Option<&str> {
    intrinsic(value, "Ref", "Ref").and_then(Value::as_str)
}

/// (logical id, attribute) of a `!GetAtt X.Attr` or `!GetAtt [X, Attr]`.
fn get_att(value: &Value) -> Option<(String, String)> {
    match intrinsic(value, "GetAtt", "Fn::GetAtt")? {
        Value::String(dotted) => {
            let (id, attribute) = dotted.split_once('.')?;
            Some((id.to_owned(), attribute.to_owned()))
        }
        Value::Sequence(pair) => match pair.as_slice() {
            [Value::String(id), Value::String(attribute)] => Some((id.clone(), attribute.clone())),
            _ => None,
        },
        _ => None,
    }
}

/// The logical id of the table that the function's environment variable
/// `name` references.
fn table_of_env(template: &Value, name: &str) -> String {
    let function = properties(template, FUNCTION);
    let variables = get(
        get(function, "Environment", FUNCTION),
        "Variables",
        "Environment",
    );
    let value = get(variables, name, "the function's environment variables");
    let target = ref_target(value)
        .unwrap_or_else(|| panic!("{name} must be a !Ref to a table, found {value:?}"));
    assert_eq!(
        resource_type(template, target),
        "AWS::DynamoDB::Table",
        "{name} references {target}, which is not a DynamoDB table"
    );
    target.to_owned()
}

/// The (accounts, ledger) tables' logical ids, found through the function's
/// environment as the code finds their names.
fn tables(template: &Value) -> (String, String) {
    let accounts = table_of_env(template, ACCOUNTS_TABLE_ENV);
    let ledger = table_of_env(template, LEDGER_TABLE_ENV);
    assert_ne!(accounts, ledger, "the two variables name the same table");
    (accounts, ledger)
}

/// A table's KeySchema as (attribute, key type), in template order.
fn key_schema(template: &Value, table: &str) -> Vec<(String, String)> {
    let props = properties(template, table);
    sequence(get(props, "KeySchema", table), "KeySchema")
        .iter()
        .map(|key| {
            (
                string(get(key, "AttributeName", "KeySchema"), "AttributeName").to_owned(),
                string(get(key, "KeyType", "KeySchema"), "KeyType").to_owned(),
            )
        })
        .collect()
}

/// A table's AttributeDefinitions as (attribute, type).
fn attribute_definitions(template: &Value, table: &str) -> Vec<(String, String)> {
    let props = properties(template, table);
    sequence(
        get(props, "AttributeDefinitions", table),
        "AttributeDefinitions",
    )
    .iter()
    .map(|attribute| {
        (
            string(
                get(attribute, "AttributeName", "AttributeDefinitions"),
                "AttributeName",
            )
            .to_owned(),
            string(
                get(attribute, "AttributeType", "AttributeDefinitions"),
                "AttributeType",
            )
            .to_owned(),
        )
    })
    .collect()
}

#[test]
fn tables_have_exactly_the_keys_the_ledger_uses() {
    let template = template();
    let (accounts, ledger) = tables(&template);
    let [accounts_keys, ledger_keys] = key_schemas();
    let [accounts_indexes, ledger_indexes] = index_schemas();
    let expected_indexes = std::collections::BTreeMap::from([
        (&accounts, accounts_indexes),
        (&ledger, ledger_indexes),
    ]);

    for (table, expected_keys) in [(&accounts, &accounts_keys), (&ledger, &ledger_keys)] {
        assert_eq!(
            &key_schema(&template, table),
            expected_keys,
            "KeySchema of {table} differs from Ledger::key_schemas()"
        );
        // Every key attribute is a string, and only key attributes are
        // declared (DynamoDB rejects definitions of non-key attributes).
        // Their order does not matter to DynamoDB, unlike the KeySchema's.
        let expected_definitions: BTreeSet<(String, String)> = expected_keys
            .iter()
            .chain(
                expected_indexes[table]
                    .iter()
                    .flat_map(|(_, keys)| keys.iter()),
            )
            .map(|(name, _)| (name.clone(), "S".to_owned()))
            .collect();
        let definitions = attribute_definitions(&template, table);
        assert_eq!(
            definitions.len(),
            expected_definitions.len(),
            "{table} declares an attribute twice or one too many: {definitions:?}"
        );
        assert_eq!(
            definitions.into_iter().collect::<BTreeSet<_>>(),
            expected_definitions,
            "AttributeDefinitions of {table} differ from Ledger::key_schemas()"
        );
        let props = mapping(properties(&template, table), table);
        assert!(
            !props.contains_key("LocalSecondaryIndexes"),
            "{table} declares LocalSecondaryIndexes, which the ledger does not use"
        );
        assert_eq!(
            &global_indexes(&template, table),
            &expected_indexes[table],
            "GlobalSecondaryIndexes of {table} differ from Ledger::index_schemas()"
        );
    }
}

/// A table's GlobalSecondaryIndexes as (name, key schema), each KEYS_ONLY.
fn global_indexes(template: &Value, table: &str) -> Vec<(String, Vec<(String, String)>)> {
    let props = properties(template, table);
    let Some(indexes) = mapping(props, table).get("GlobalSecondaryIndexes") else {
        return Vec::new();
    };
    sequence(indexes, "GlobalSecondaryIndexes")
        .iter()
        .map(|index| {
            let name = string(get(index, "IndexName", "an index"), "IndexName").to_owned();
            let projection = get(index, "Projection", "an index");
            assert_eq!(
                string(
                    get(projection, "ProjectionType", "Projection"),
                    "ProjectionType"
                ),
                "KEYS_ONLY",
                "index {name} of {table}"
            );
            let keys = sequence(get(index, "KeySchema", "an index"), "KeySchema")
                .iter()
                .map(|key| {
                    (
                        string(get(key, "AttributeName", "KeySchema"), "AttributeName").to_owned(),
                        string(get(key, "KeyType", "KeySchema"), "KeyType").to_owned(),
                    )
                })
                .collect();
            (name, keys)
        })
        .collect()
}

#[test]
fn the_template_declares_only_the_two_ledger_tables() {
    let template = template();
    let (accounts, ledger) = tables(&template);
    let declared: BTreeSet<String> = mapping(get(&template, "Resources", "template"), "Resources")
        .iter()
        .filter(|(_, resource)| {
            resource.get("Type").and_then(Value::as_str) == Some("AWS::DynamoDB::Table")
        })
        .map(|(id, _)| string(id, "a logical id").to_owned())
        .collect();
    assert_eq!(declared, BTreeSet::from([accounts.clone(), ledger.clone()]));

    let outputs = get(&template, "Outputs", "template");
    for (output, table) in [
        ("AccountsTableName", &accounts),
        ("LedgerTableName", &ledger),
    ] {
        let value = get(get(outputs, output, "Outputs"), "Value", output);
        assert_eq!(ref_target(value), Some(table.as_str()), "output {output}");
    }
}

#[test]
fn function_may_use_only_the_ledger_actions_on_the_two_tables() {
    let template = template();
    let (accounts, ledger) = tables(&template);
    let function = mapping(properties(&template, FUNCTION), FUNCTION);
    assert!(
        !function.contains_key("Role"),
        "an explicit Role would replace the Policies checked here"
    );

    let mut actions = BTreeSet::new();
    let mut resources = BTreeSet::new();
    let policies = function
        .get("Policies")
        .unwrap_or_else(|| panic!("{FUNCTION} has no Policies"));
    for policy in sequence(policies, "Policies") {
        // Only inline policy documents: no managed policy names or ARNs and
        // no SAM policy templates (DynamoDBCrudPolicy and the like).
        let document = mapping(policy, "a policy (only inline documents are allowed)");
        let keys: BTreeSet<&str> = document.keys().filter_map(Value::as_str).collect();
        assert!(
            keys.contains("Statement") && keys.is_subset(&BTreeSet::from(["Version", "Statement"])),
            "not an inline policy document: {policy:?}"
        );
        for statement in sequence(get(policy, "Statement", "policy"), "Statement") {
            assert_eq!(
                statement.get("Effect").and_then(Value::as_str),
                Some("Allow"),
                "{statement:?}"
            );
            let action = get(statement, "Action", "statement");
            let listed: Vec<&str> = match action {
                Value::String(one) => vec![one.as_str()],
                _ => sequence(action, "Action")
                    .iter()
                    .map(|a| string(a, "an action"))
                    .collect(),
            };
            actions.extend(listed.into_iter().map(str::to_owned));
            let resource = get(statement, "Resource", "statement");
            let targets: Vec<&Value> = match resource {
                Value::Sequence(list) => list.iter().collect(),
                one => vec![one],
            };
            for target in targets {
                // A table, or its indexes: !Sub "${<table>.Arn}/index/*".
                if let Some(Value::String(sub)) = intrinsic(target, "Sub", "Fn::Sub") {
                    let id = sub
                        .strip_prefix("${")
                        .and_then(|s| s.strip_suffix(".Arn}/index/*"))
                        .unwrap_or_else(|| {
                            panic!("a !Sub resource must be \"${{<table>.Arn}}/index/*\", found {sub:?}")
                        });
                    resources.insert(format!("{id}/index/*"));
                    continue;
                }
                let (id, attribute) = get_att(target).unwrap_or_else(|| {
                    panic!("resources must be !GetAtt <table>.Arn, found {target:?}")
                });
                assert_eq!(attribute, "Arn", "{target:?}");
                resources.insert(id);
            }
        }
    }

    let expected: BTreeSet<String> = DYNAMODB_ACTIONS.iter().map(|a| a.to_string()).collect();
    assert_eq!(actions, expected, "the function's IAM actions");
    // And that list is the one the ledger's code needs: a call added to the
    // ledger without its action (or an action left over) fails here.
    assert_eq!(
        expected,
        ledger_actions(),
        "DYNAMODB_ACTIONS against the DynamoDB calls in src/ledger"
    );
    assert_eq!(
        resources,
        BTreeSet::from([
            format!("{accounts}/index/*"),
            format!("{ledger}/index/*"),
            accounts,
            ledger,
        ]),
        "the function's IAM resources must be exactly the two tables and their indexes"
    );
}

/// The logical ids of the resources of `kind`.
fn resources_of_type(template: &Value, kind: &str) -> Vec<String> {
    mapping(get(template, "Resources", "template"), "Resources")
        .iter()
        .filter(|(_, resource)| resource.get("Type").and_then(Value::as_str) == Some(kind))
        .map(|(id, _)| string(id, "a logical id").to_owned())
        .collect()
}

/// The one resource of `kind`.
fn only_resource_of_type(template: &Value, kind: &str) -> String {
    match resources_of_type(template, kind).as_slice() {
        [one] => one.clone(),
        other => panic!("expected exactly one {kind}, found {other:?}"),
    }
}

/// The `!Sub` string of `value` (short tag or `Fn::Sub`), if it is one.
fn sub_string(value: &Value) -> Option<&str> {
    intrinsic(value, "Sub", "Fn::Sub").and_then(Value::as_str)
}

/// The HTTP API is written as plain AWS::ApiGatewayV2 resources (the local
/// emulator ignores the OpenAPI body SAM would generate): one HTTP API, its
/// `$default` stage, one route per path of the gRPC service, integrated
/// with the function (payload 2.0) and behind the JWT authorizer.
#[test]
fn the_http_api_routes_the_grpc_service_to_the_function() {
    let template = template();
    let function = mapping(properties(&template, FUNCTION), FUNCTION);
    assert!(
        !function.contains_key("Events"),
        "function events would make SAM generate an OpenAPI body the emulator ignores; use the ApiGatewayV2 resources"
    );
    assert!(
        resources_of_type(&template, "AWS::Serverless::HttpApi").is_empty(),
        "no AWS::Serverless::HttpApi (see the template's comment)"
    );

    let api = only_resource_of_type(&template, "AWS::ApiGatewayV2::Api");
    let api_props = properties(&template, &api);
    assert_eq!(get(api_props, "ProtocolType", &api).as_str(), Some("HTTP"));

    // A named stage would prefix the path and break gRPC routing.
    let stage = only_resource_of_type(&template, "AWS::ApiGatewayV2::Stage");
    let stage_props = properties(&template, &stage);
    assert_eq!(
        ref_target(get(stage_props, "ApiId", &stage)),
        Some(api.as_str())
    );
    assert_eq!(
        get(stage_props, "StageName", &stage).as_str(),
        Some("$default")
    );
    assert_eq!(get(stage_props, "AutoDeploy", &stage).as_bool(), Some(true));

    let integration = only_resource_of_type(&template, "AWS::ApiGatewayV2::Integration");
    let integration_props = properties(&template, &integration);
    assert_eq!(
        ref_target(get(integration_props, "ApiId", &integration)),
        Some(api.as_str())
    );
    assert_eq!(
        get(integration_props, "IntegrationType", &integration).as_str(),
        Some("AWS_PROXY")
    );
    assert_eq!(
        get_att(get(integration_props, "IntegrationUri", &integration)),
        Some((FUNCTION.to_owned(), "Arn".to_owned()))
    );
    assert_eq!(
        get(integration_props, "PayloadFormatVersion", &integration).as_str(),
        Some("2.0"),
        "lambda_http reads payload format 2.0 events"
    );

    let routes = resources_of_type(&template, "AWS::ApiGatewayV2::Route");
    let keys: Vec<String> = routes
        .iter()
        .map(|route| {
            let props = properties(&template, route);
            assert_eq!(ref_target(get(props, "ApiId", route)), Some(api.as_str()));
            assert_eq!(
                sub_string(get(props, "Target", route)),
                Some(format!("integrations/${{{integration}}}").as_str()),
                "{route} targets the function's integration"
            );
            string(get(props, "RouteKey", route), "RouteKey").to_owned()
        })
        .collect();
    assert_eq!(keys, [format!("POST /{SERVICE_NAME}/{{method}}")]);

    // API Gateway may invoke the function, from this API only.
    let permission = only_resource_of_type(&template, "AWS::Lambda::Permission");
    let permission_props = properties(&template, &permission);
    assert_eq!(
        ref_target(get(permission_props, "FunctionName", &permission)),
        Some(FUNCTION)
    );
    assert_eq!(
        get(permission_props, "Principal", &permission).as_str(),
        Some("apigateway.amazonaws.com")
    );
    let source =
        sub_string(get(permission_props, "SourceArn", &permission)).expect("SourceArn is a !Sub");
    assert!(
        source.contains(&format!(":${{{api}}}/"))
            && source.ends_with(&format!("/{SERVICE_NAME}/*")),
        "SourceArn {source} names this API and the service's paths"
    );

    // The stack's ApiUrl is the API's own endpoint.
    let outputs = get(&template, "Outputs", "template");
    let url = get(get(outputs, "ApiUrl", "Outputs"), "Value", "ApiUrl");
    assert_eq!(get_att(url), Some((api.clone(), "ApiEndpoint".to_owned())));
}

/// The function trusts the authorizer's claims (PAYMENT_AUTH_MODE=apigateway),
/// so no route may reach it without the JWT authorizer: every route of every
/// API integrated with it has AuthorizationType JWT and the authorizer.
#[test]
fn apigateway_auth_mode_comes_with_an_authorizer_on_every_route() {
    let template = template();
    let variables = get(
        get(properties(&template, FUNCTION), "Environment", FUNCTION),
        "Variables",
        "Environment",
    );
    assert_eq!(
        get(variables, "PAYMENT_AUTH_MODE", "Variables").as_str(),
        Some("apigateway"),
        "the deployed function takes the caller from the authorizer's claims"
    );

    let authorizer = only_resource_of_type(&template, "AWS::ApiGatewayV2::Authorizer");
    let authorizer_props = properties(&template, &authorizer);
    assert_eq!(
        get(authorizer_props, "AuthorizerType", &authorizer).as_str(),
        Some("JWT")
    );
    let sources = sequence(
        get(authorizer_props, "IdentitySource", &authorizer),
        "IdentitySource",
    );
    assert_eq!(
        sources.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        [Some("$request.header.Authorization")]
    );
    let jwt = get(authorizer_props, "JwtConfiguration", &authorizer);
    for key in ["Issuer", "Audience"] {
        get(jwt, key, "JwtConfiguration");
    }

    let integrations: BTreeSet<String> =
        resources_of_type(&template, "AWS::ApiGatewayV2::Integration")
            .into_iter()
            .filter(|id| {
                get_att(get(properties(&template, id), "IntegrationUri", id)).map(|(f, _)| f)
                    == Some(FUNCTION.to_owned())
            })
            .collect();
    assert!(
        !integrations.is_empty(),
        "no integration reaches the function"
    );
    let routes = resources_of_type(&template, "AWS::ApiGatewayV2::Route");
    assert!(!routes.is_empty());
    for route in &routes {
        let props = mapping(properties(&template, route), route);
        let target = props
            .get("Target")
            .and_then(sub_string)
            .unwrap_or_else(|| panic!("{route} has no !Sub Target"));
        let integration = target
            .strip_prefix("integrations/${")
            .and_then(|rest| rest.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{route}: Target {target}"));
        assert!(
            integrations.contains(integration),
            "{route} targets {integration}, not the function's integration"
        );
        assert_eq!(
            props.get("AuthorizationType").and_then(Value::as_str),
            Some("JWT"),
            "{route} must be behind the JWT authorizer"
        );
        assert_eq!(
            props.get("AuthorizerId").and_then(ref_target),
            Some(authorizer.as_str()),
            "{route} must name the JWT authorizer"
        );
    }
}

#[test]
fn the_function_allows_the_same_browser_origins_as_the_http_api() {
    let template = template();
    let function = properties(&template, FUNCTION);
    let variables = get(
        get(function, "Environment", FUNCTION),
        "Variables",
        "Environment",
    );
    let origins = get(
        variables,
        "PAYMENT_CORS_ORIGINS",
        "the function's environment variables",
    );
    let join = intrinsic(origins, "Join", "Fn::Join")
        .unwrap_or_else(|| panic!("PAYMENT_CORS_ORIGINS must be a !Join, found {origins:?}"));
    let [separator, list] = sequence(join, "!Join") else {
        panic!("!Join takes [separator, list]: {join:?}");
    };
    assert_eq!(separator.as_str(), Some(","));
    assert_eq!(ref_target(list), Some("AllowedOrigins"));
    // The HTTP API's own CORS lists the same parameter.
    let cors = get(
        properties(&template, "HttpApi"),
        "CorsConfiguration",
        "HttpApi",
    );
    assert_eq!(
        ref_target(get(cors, "AllowOrigins", "CorsConfiguration")),
        Some("AllowedOrigins")
    );
}
