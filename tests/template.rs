//! template.yaml (the AWS SAM deployment) checked against the code: the
//! DynamoDB tables carry exactly the keys the ledger uses, the function is
//! told their names through the environment variables the code reads, its IAM
//! policy grants exactly the DynamoDB actions the ledger needs on those two
//! tables and nothing broader, the HTTP API routes the gRPC service's path to
//! the function, and every route is behind the JWT authorizer whose claims
//! the function trusts.

use payment::ledger::{Ledger, Tables};
use payment::pb::payment_service_server::SERVICE_NAME;
use payment::settings::{ACCOUNTS_TABLE_ENV, LEDGER_TABLE_ENV};
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
    const OPERATIONS: [(&str, &str); 13] = [
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
        (".update_table()", "UpdateTable"),
    ];
    const TRANSACT_ITEMS: [(&str, &str); 4] = [
        ("Put::builder()", "PutItem"),
        ("Update::builder()", "UpdateItem"),
        ("Delete::builder()", "DeleteItem"),
        ("ConditionCheck::builder()", "ConditionCheckItem"),
    ];
    // stream.rs turns streams on for DynamoDB Local and tests (deployed
    // tables get theirs from template.yaml), like layout's CreateTable.
    const NOT_THE_FUNCTIONS: [(&str, &str); 4] = [
        ("layout/schema.rs", "CreateTable"),
        ("audit.rs", "Scan"),
        ("stream.rs", "DescribeTable"),
        ("stream.rs", "UpdateTable"),
    ];
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ledger");
    // Every source file under src/ledger, its folders too, named by its
    // path from there.
    let mut sources = Vec::new();
    let mut folders = vec![std::path::PathBuf::from(dir)];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("reading {}: {e}", folder.display()));
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let name = path.strip_prefix(dir).expect("under src/ledger");
            let name = name.to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&path).expect("source");
            sources.push((name, text));
        }
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

// --- What the team on call sees: alarms, the dashboard, traces and JSON logs
// (docs/alarms.md).

// The metrics the service emits, as EMF records in the function's log: the
// contract with the telemetry code (docs/observability.md defines each).
// An alarm or a dashboard widget that names anything else in the service's
// namespace (a metric renamed on one side only) fails here.
use payment::telemetry::emf::{DIMENSIONS as SERVICE_DIMENSION_SETS, METRICS as SERVICE_METRICS};

/// The gRPC code names, as the Code dimension spells them.
const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The metrics AWS publishes that the template may name: namespace, the
/// dimensions (each with the value the template must give it: a `${Ref}`,
/// a constant, or "*" for the DynamoDB operation, checked elsewhere) and the
/// metric names.
type AwsMetrics = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
);
const AWS_METRICS: [AwsMetrics; 5] = [
    (
        "AWS/Lambda",
        &[("FunctionName", "${PaymentFunction}")],
        &[
            "Invocations",
            "Errors",
            "Throttles",
            "ConcurrentExecutions",
            "Duration",
        ],
    ),
    // payment-events, read from the tables' streams: how far behind it is.
    (
        "AWS/Lambda",
        &[("FunctionName", "${EventsFunction}")],
        &["IteratorAge", "Errors"],
    ),
    (
        "AWS/SQS",
        &[("QueueName", "${EventsFailureQueue.QueueName}")],
        &["ApproximateNumberOfMessagesVisible"],
    ),
    (
        "AWS/ApiGateway",
        &[("ApiId", "${HttpApi}"), ("Stage", "$default")],
        &["Count", "4xx", "5xx", "Latency"],
    ),
    (
        "AWS/DynamoDB",
        &[("TableName", "*"), ("Operation", "*")],
        &["ThrottledRequests", "SystemErrors"],
    ),
];

/// The service's namespace, as the template names it.
const SERVICE_NAMESPACE: &str = "${MetricsNamespace}";
/// The value of the Service dimension: the stack's name.
const SERVICE_DIMENSION: &str = "${AWS::StackName}";

/// One alarm of the template, as on-call reads it.
struct Alarm {
    id: &'static str,
    /// AlarmName is the stack's name, a dash and this.
    name: &'static str,
    /// Its runbook: the heading of docs/alarms.md with this anchor.
    anchor: &'static str,
    /// The threshold as its AlarmDescription states it.
    stated: &'static str,
    threshold: f64,
    period: u64,
    evaluation_periods: u64,
    datapoints_to_alarm: u64,
    /// What it watches: the statistic and metric for an alarm on one metric;
    /// for metric math, the expression, then each metric by its id.
    watches: &'static str,
}

/// Every alarm, with its threshold (docs/alarms.md gives the reasons).
fn expected_alarms() -> Vec<Alarm> {
    let dynamodb = |id, name, anchor, stated| Alarm {
        id,
        name,
        anchor,
        stated,
        threshold: 0.0,
        period: 60,
        evaluation_periods: 5,
        datapoints_to_alarm: 2,
        watches: "SUM(METRICS())",
    };
    vec![
        Alarm {
            id: "InternalErrorsAlarm",
            name: "internal",
            anchor: "internal",
            stated: "INTERNAL > 0 in a minute",
            threshold: 0.0,
            period: 60,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            watches: "Sum ${MetricsNamespace} Calls{Service=${AWS::StackName}, Code=INTERNAL}",
        },
        Alarm {
            id: "OutcomeUnknownRateAlarm",
            name: "outcome-unknown-rate",
            anchor: "outcome-unknown-rate",
            stated: "OUTCOME_UNKNOWN above 1 % of calls over 5 minutes (with at least 50 calls)",
            threshold: 1.0,
            period: 300,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            watches: "IF(calls >= 50, 100 * FILL(failed, 0) / calls, 0); \
                      failed: Sum ${MetricsNamespace} OutcomeUnknown{Service=${AWS::StackName}}; \
                      calls: Sum ${MetricsNamespace} Calls{Service=${AWS::StackName}}",
        },
        Alarm {
            id: "UnavailableRateAlarm",
            name: "unavailable-rate",
            anchor: "unavailable-rate",
            stated: "UNAVAILABLE above 5 % of calls in 3 of 5 minutes (with at least 20 calls a minute)",
            threshold: 5.0,
            period: 60,
            evaluation_periods: 5,
            datapoints_to_alarm: 3,
            watches: "IF(calls >= 20, 100 * FILL(failed, 0) / calls, 0); \
                      failed: Sum ${MetricsNamespace} Calls{Service=${AWS::StackName}, Code=UNAVAILABLE}; \
                      calls: Sum ${MetricsNamespace} Calls{Service=${AWS::StackName}}",
        },
        Alarm {
            id: "AbortedRateAlarm",
            name: "aborted-rate",
            anchor: "aborted-rate",
            stated: "ABORTED above 5 % of calls in 3 of 5 minutes (with at least 20 calls a minute)",
            threshold: 5.0,
            period: 60,
            evaluation_periods: 5,
            datapoints_to_alarm: 3,
            watches: "IF(calls >= 20, 100 * FILL(failed, 0) / calls, 0); \
                      failed: Sum ${MetricsNamespace} Calls{Service=${AWS::StackName}, Code=ABORTED}; \
                      calls: Sum ${MetricsNamespace} Calls{Service=${AWS::StackName}}",
        },
        Alarm {
            id: "MakePaymentLatencyAlarm",
            name: "make-payment-p99",
            anchor: "makepayment-p99",
            stated: "p99 latency of MakePayment above 500 ms in 2 of 3 five-minute periods",
            threshold: 500.0,
            period: 300,
            evaluation_periods: 3,
            datapoints_to_alarm: 2,
            watches: "p99 ${MetricsNamespace} Latency{Service=${AWS::StackName}, Method=MakePayment}",
        },
        Alarm {
            id: "FunctionErrorsAlarm",
            name: "lambda-errors",
            anchor: "lambda-errors",
            stated: "Lambda Errors > 0 in a minute",
            threshold: 0.0,
            period: 60,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            watches: "Sum AWS/Lambda Errors{FunctionName=${PaymentFunction}}",
        },
        Alarm {
            id: "FunctionThrottlesAlarm",
            name: "lambda-throttles",
            anchor: "lambda-throttles",
            stated: "Lambda Throttles > 0 in 2 of 5 minutes",
            threshold: 0.0,
            period: 60,
            evaluation_periods: 5,
            datapoints_to_alarm: 2,
            watches: "Sum AWS/Lambda Throttles{FunctionName=${PaymentFunction}}",
        },
        Alarm {
            id: "Api5xxAlarm",
            name: "api-5xx",
            anchor: "api-5xx",
            stated: "API Gateway 5xx > 0 in a minute",
            threshold: 0.0,
            period: 60,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            watches: "Sum AWS/ApiGateway 5xx{ApiId=${HttpApi}, Stage=$default}",
        },
        Alarm {
            id: "EventsFailedAlarm",
            name: "events-failed",
            anchor: "events-failed",
            stated: "Events failure queue depth > 0 in a minute",
            threshold: 0.0,
            period: 60,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            watches: "Maximum AWS/SQS ApproximateNumberOfMessagesVisible{QueueName=${EventsFailureQueue.QueueName}}",
        },
        Alarm {
            id: "EventsLagAlarm",
            name: "events-lag",
            anchor: "events-lag",
            stated: "payment-events IteratorAge > 60 s in 3 of 5 minutes",
            threshold: 60000.0,
            period: 60,
            evaluation_periods: 5,
            datapoints_to_alarm: 3,
            watches: "Maximum AWS/Lambda IteratorAge{FunctionName=${EventsFunction}}",
        },
        dynamodb(
            "AccountsTableThrottlesAlarm",
            "accounts-throttled",
            "dynamodb-throttled",
            "DynamoDB ThrottledRequests > 0 on the accounts table in 2 of 5 minutes",
        ),
        dynamodb(
            "LedgerTableThrottlesAlarm",
            "ledger-throttled",
            "dynamodb-throttled",
            "DynamoDB ThrottledRequests > 0 on the ledger table in 2 of 5 minutes",
        ),
        dynamodb(
            "AccountsTableSystemErrorsAlarm",
            "accounts-system-errors",
            "dynamodb-system-errors",
            "DynamoDB SystemErrors > 0 on the accounts table in 2 of 5 minutes",
        ),
        dynamodb(
            "LedgerTableSystemErrorsAlarm",
            "ledger-system-errors",
            "dynamodb-system-errors",
            "DynamoDB SystemErrors > 0 on the ledger table in 2 of 5 minutes",
        ),
    ]
}

/// A value the template writes as a string, a `!Ref X` (as `${X}`) or a
/// `!Sub` (its text).
fn rendered(value: &Value, what: &str) -> String {
    if let Some(target) = ref_target(value) {
        return format!("${{{target}}}");
    }
    if let Some(text) = sub_string(value) {
        return text.to_owned();
    }
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("{what}: not a string, !Ref or !Sub: {other:?}"),
    }
}

/// One metric an alarm or a widget names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MetricRef {
    namespace: String,
    name: String,
    /// (dimension, value); the value "*" when a SEARCH leaves it open.
    dimensions: Vec<(String, String)>,
}

impl MetricRef {
    fn show(&self) -> String {
        let dims: Vec<String> = self
            .dimensions
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("{} {}{{{}}}", self.namespace, self.name, dims.join(", "))
    }
}

/// A `Metric` (Namespace, MetricName, Dimensions) of an alarm.
fn alarm_metric(metric: &Value, what: &str) -> MetricRef {
    let dimensions = match metric.get("Dimensions") {
        None => Vec::new(),
        Some(list) => sequence(list, "Dimensions")
            .iter()
            .map(|d| {
                (
                    string(get(d, "Name", what), "Name").to_owned(),
                    rendered(get(d, "Value", what), what),
                )
            })
            .collect(),
    };
    MetricRef {
        namespace: rendered(get(metric, "Namespace", what), what),
        name: rendered(get(metric, "MetricName", what), what),
        dimensions,
    }
}

/// Identifiers (metric ids) an expression uses, outside its quoted strings
/// and function names (upper case).
fn expression_ids(expression: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut unquoted = String::new();
    let mut quote = None;
    for ch in expression.chars() {
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None => unquoted.push(ch),
        }
    }
    for word in unquoted.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with(|c: char| c.is_ascii_lowercase()) {
            ids.insert(word.to_owned());
        }
    }
    ids
}

/// What an alarm watches, in the form of [`Alarm::watches`], the metrics it
/// names and, for metric math, their periods.
fn alarm_watches(props: &Value, id: &str) -> (String, Vec<MetricRef>, Vec<u64>) {
    let map = mapping(props, id);
    let Some(queries) = map.get("Metrics") else {
        let stat = match (map.get("Statistic"), map.get("ExtendedStatistic")) {
            (Some(stat), None) | (None, Some(stat)) => string(stat, "Statistic").to_owned(),
            other => panic!("{id}: exactly one of Statistic and ExtendedStatistic: {other:?}"),
        };
        let metric = alarm_metric(props, id);
        return (
            format!("{stat} {}", metric.show()),
            vec![metric],
            Vec::new(),
        );
    };
    for key in [
        "MetricName",
        "Namespace",
        "Statistic",
        "Period",
        "Dimensions",
    ] {
        assert!(
            !map.contains_key(key),
            "{id}: {key} beside Metrics (metric math)"
        );
    }
    let mut expression = None;
    let mut parts = Vec::new();
    let mut metrics = Vec::new();
    let mut ids = BTreeSet::new();
    let mut periods = Vec::new();
    for query in sequence(queries, "Metrics") {
        let qid = string(get(query, "Id", id), "Id").to_owned();
        assert!(ids.insert(qid.clone()), "{id}: Id {qid} twice");
        let returns = get(query, "ReturnData", id).as_bool().expect("ReturnData");
        if let Some(text) = query.get("Expression") {
            assert!(
                returns,
                "{id}: the expression {qid} is what the alarm watches"
            );
            assert!(
                expression.is_none(),
                "{id}: one expression returns data, not two"
            );
            expression = Some(string(text, "Expression").to_owned());
        } else {
            assert!(!returns, "{id}: metric {qid} only feeds the expression");
            let stat = get(query, "MetricStat", id);
            let metric = alarm_metric(get(stat, "Metric", id), id);
            periods.push(get(stat, "Period", id).as_u64().expect("Period"));
            parts.push(format!(
                "{qid}: {} {}",
                string(get(stat, "Stat", id), "Stat"),
                metric.show()
            ));
            metrics.push(metric);
        }
    }
    let expression = expression.unwrap_or_else(|| panic!("{id}: no expression returns data"));
    let used = expression_ids(&expression);
    assert!(
        used.is_subset(&ids),
        "{id}: {expression} uses ids it does not define ({ids:?})"
    );
    if expression.contains("METRICS()") {
        return (expression, metrics, periods);
    }
    let mut watches = vec![expression];
    watches.extend(parts);
    (watches.join("; "), metrics, periods)
}

/// The anchors of docs/alarms.md's headings (GitHub's slugs).
fn runbook_anchors() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/alarms.md");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    text.lines()
        .filter_map(|line| line.strip_prefix('#'))
        .map(|heading| {
            heading
                .trim_start_matches('#')
                .trim()
                .replace('`', "")
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    '-' | '_' => Some(c),
                    c if c.is_alphanumeric() => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// The `!If [NotifyAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]`
/// every alarm's actions are.
fn is_topic_or_nothing(value: &Value) -> bool {
    let Some(Value::Sequence(args)) = intrinsic(value, "If", "Fn::If") else {
        return false;
    };
    match args.as_slice() {
        [condition, Value::Sequence(topic), nothing] => {
            condition.as_str() == Some("NotifyAlarmTopic")
                && topic.len() == 1
                && ref_target(&topic[0]) == Some("AlarmTopicArn")
                && ref_target(nothing) == Some("AWS::NoValue")
        }
        _ => false,
    }
}

#[test]
fn the_alarms_have_their_thresholds_reasons_and_runbooks() {
    let template = template();
    let expected = expected_alarms();
    let declared: BTreeSet<String> = resources_of_type(&template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .collect();
    assert_eq!(
        declared,
        expected.iter().map(|a| a.id.to_owned()).collect(),
        "the template's alarms"
    );
    let anchors = runbook_anchors();

    // The topic is optional: alarm actions only when it is given.
    let parameters = get(&template, "Parameters", "template");
    let topic = get(parameters, "AlarmTopicArn", "Parameters");
    assert_eq!(get(topic, "Default", "AlarmTopicArn").as_str(), Some(""));
    let condition = get(
        get(&template, "Conditions", "template"),
        "NotifyAlarmTopic",
        "Conditions",
    );
    let not = intrinsic(condition, "Not", "Fn::Not").expect("NotifyAlarmTopic is a !Not");
    let [equals] = sequence(not, "!Not") else {
        panic!("!Not takes one condition");
    };
    let pair = sequence(
        intrinsic(equals, "Equals", "Fn::Equals").expect("!Not [!Equals ...]"),
        "!Equals",
    );
    assert_eq!(ref_target(&pair[0]), Some("AlarmTopicArn"));
    assert_eq!(pair[1].as_str(), Some(""));

    for alarm in &expected {
        let id = alarm.id;
        let props = properties(&template, id);
        assert_eq!(
            sub_string(get(props, "AlarmName", id)),
            Some(format!("${{AWS::StackName}}-{}", alarm.name).as_str()),
            "{id}: AlarmName"
        );
        let description = string(get(props, "AlarmDescription", id), "AlarmDescription");
        assert!(
            description.starts_with(alarm.stated),
            "{id}: the description states the threshold first ({:?}): {description}",
            alarm.stated
        );
        assert!(
            description.ends_with(&format!("Runbook: docs/alarms.md#{}", alarm.anchor)),
            "{id}: the description ends with its runbook: {description}"
        );
        assert!(
            anchors.contains(alarm.anchor),
            "{id}: docs/alarms.md has no heading #{}",
            alarm.anchor
        );
        assert!(description.len() <= 1024, "{id}: AlarmDescription too long");
        for key in ["AlarmActions", "OKActions"] {
            assert!(
                is_topic_or_nothing(get(props, key, id)),
                "{id}: {key} must be !If [NotifyAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]"
            );
        }
        assert_eq!(
            get(props, "ComparisonOperator", id).as_str(),
            Some("GreaterThanThreshold"),
            "{id}"
        );
        assert_eq!(
            get(props, "Threshold", id).as_f64(),
            Some(alarm.threshold),
            "{id}: Threshold"
        );
        assert_eq!(
            get(props, "EvaluationPeriods", id).as_u64(),
            Some(alarm.evaluation_periods),
            "{id}: EvaluationPeriods"
        );
        assert_eq!(
            get(props, "DatapointsToAlarm", id).as_u64(),
            Some(alarm.datapoints_to_alarm),
            "{id}: DatapointsToAlarm"
        );
        // No traffic is no trouble.
        assert_eq!(
            get(props, "TreatMissingData", id).as_str(),
            Some("notBreaching"),
            "{id}: TreatMissingData"
        );
        let (watches, _, periods) = alarm_watches(props, id);
        if periods.is_empty() {
            assert_eq!(
                get(props, "Period", id).as_u64(),
                Some(alarm.period),
                "{id}: Period"
            );
        } else {
            assert!(
                periods.iter().all(|p| *p == alarm.period),
                "{id}: the period of every metric is {}: {periods:?}",
                alarm.period
            );
        }
        let want = alarm
            .watches
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(watches, want, "{id}: what it watches");
    }
}

/// The DynamoDB operations the function calls: its IAM actions, with
/// TransactWriteItems for the per-item actions it is authorized through.
fn function_operations() -> BTreeSet<String> {
    let mut operations: BTreeSet<String> = DYNAMODB_ACTIONS
        .iter()
        .map(|a| a.trim_start_matches("dynamodb:").to_owned())
        .filter(|a| a != "ConditionCheckItem")
        .collect();
    operations.insert("TransactWriteItems".to_owned());
    operations
}

/// DynamoDB publishes ThrottledRequests and SystemErrors per table and
/// operation: each of the four alarms sums exactly the operations the
/// function calls, on one table.
#[test]
fn the_dynamodb_alarms_sum_every_operation_the_function_calls() {
    let template = template();
    let (accounts, ledger) = tables(&template);
    for (id, metric, table) in [
        (
            "AccountsTableThrottlesAlarm",
            "ThrottledRequests",
            &accounts,
        ),
        ("LedgerTableThrottlesAlarm", "ThrottledRequests", &ledger),
        ("AccountsTableSystemErrorsAlarm", "SystemErrors", &accounts),
        ("LedgerTableSystemErrorsAlarm", "SystemErrors", &ledger),
    ] {
        let (_, metrics, _) = alarm_watches(properties(&template, id), id);
        assert!(
            metrics.len() <= 10,
            "{id}: a metric math alarm names at most 10 metrics"
        );
        let mut operations = BTreeSet::new();
        for m in &metrics {
            assert_eq!(
                (m.namespace.as_str(), m.name.as_str()),
                ("AWS/DynamoDB", metric),
                "{id}"
            );
            let [(t, table_ref), (o, operation)] = m.dimensions.as_slice() else {
                panic!("{id}: dimensions TableName and Operation: {m:?}");
            };
            assert_eq!((t.as_str(), o.as_str()), ("TableName", "Operation"), "{id}");
            assert_eq!(table_ref, &format!("${{{table}}}"), "{id}");
            assert!(
                operations.insert(operation.clone()),
                "{id}: {operation} twice"
            );
        }
        assert_eq!(
            operations,
            function_operations(),
            "{id}: the operations summed"
        );
    }
}

/// `text` (a `!Sub` string) with each `${Var}` replaced by `value(Var)`,
/// every variable checked to be a parameter, a resource (or its attribute)
/// or a pseudo parameter of the template.
fn substitute(template: &Value, text: &str, value: impl Fn(&str) -> String) -> String {
    let parameters = mapping(get(template, "Parameters", "template"), "Parameters");
    let resources = mapping(get(template, "Resources", "template"), "Resources");
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .unwrap_or_else(|| panic!("unclosed ${{ in {text}"));
        let var = &after[..end];
        if let Some(literal) = var.strip_prefix('!') {
            out.push_str(&format!("${{{literal}}}"));
        } else {
            let resource = var.split_once('.').map_or(var, |(r, _)| r);
            assert!(
                matches!(
                    var,
                    "AWS::StackName" | "AWS::Region" | "AWS::AccountId" | "AWS::Partition"
                ) || parameters.contains_key(var)
                    || resources.contains_key(resource),
                "${{{var}}} names nothing in the template"
            );
            out.push_str(&value(var));
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The dashboard's body with sample values (JSON).
fn dashboard_body(template: &Value) -> serde_json::Value {
    let dashboard = only_resource_of_type(template, "AWS::CloudWatch::Dashboard");
    let props = properties(template, &dashboard);
    let body = sub_string(get(props, "DashboardBody", &dashboard))
        .expect("DashboardBody is a !Sub string");
    // Placeholders that survive JSON quoting and show where they came from.
    let text = substitute(template, body, |var| format!("${{{var}}}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("DashboardBody is not JSON: {e}"))
}

/// The metrics a SEARCH expression names: `SEARCH('{"ns",Dim,...} MetricName="X" Dim="v"', ...)`.
fn search_metrics(expression: &str) -> Vec<MetricRef> {
    let mut found = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find("SEARCH('{") {
        let after = &rest[start + "SEARCH('{".len()..];
        // The namespace may be quoted, and a placeholder's braces inside it
        // do not end the schema.
        let skip = match after.strip_prefix('"') {
            Some(quoted) => quoted.find('"').expect("a quoted namespace ends") + 2,
            None => 0,
        };
        let close = after[skip..]
            .find('}')
            .expect("a SEARCH schema ends with }")
            + skip;
        let mut schema = after[..close].split(',');
        let namespace = schema.next().unwrap().trim_matches('"').to_owned();
        let names: Vec<String> = schema.map(|d| d.trim_matches('"').to_owned()).collect();
        let terms_end = after[close..].find('\'').expect("the SEARCH string ends") + close;
        let terms = &after[close + 1..terms_end];
        let term = |key: &str| {
            terms.split_whitespace().find_map(|t| {
                t.strip_prefix(&format!("{key}=\""))
                    .and_then(|v| v.strip_suffix('"'))
                    .map(str::to_owned)
            })
        };
        let name =
            term("MetricName").unwrap_or_else(|| panic!("SEARCH without MetricName: {expression}"));
        let dimensions = names
            .iter()
            .map(|d| (d.clone(), term(d).unwrap_or_else(|| "*".to_owned())))
            .collect();
        found.push(MetricRef {
            namespace,
            name,
            dimensions,
        });
        rest = &after[terms_end..];
    }
    found
}

/// Every metric the dashboard's widgets name, each widget's expressions
/// checked to use only ids the widget defines.
fn dashboard_metrics(body: &serde_json::Value) -> Vec<MetricRef> {
    let mut found = Vec::new();
    for widget in body["widgets"].as_array().expect("widgets") {
        let Some(rows) = widget["properties"]["metrics"].as_array() else {
            continue;
        };
        let mut ids = BTreeSet::new();
        let mut used = BTreeSet::new();
        for row in rows {
            let row = row.as_array().expect("a metrics row is an array");
            let options = row.last().and_then(|o| o.as_object());
            if let Some(id) = options.and_then(|o| o.get("id")).and_then(|i| i.as_str()) {
                assert!(
                    ids.insert(id.to_owned()),
                    "id {id} twice in {}",
                    widget["properties"]["title"]
                );
            }
            if let Some(expression) = options
                .and_then(|o| o.get("expression"))
                .and_then(|e| e.as_str())
            {
                assert_eq!(row.len(), 1, "an expression row holds only its options");
                used.extend(expression_ids(expression));
                found.extend(search_metrics(expression));
                continue;
            }
            let strings: Vec<&str> = row
                .iter()
                .take_while(|v| v.is_string())
                .map(|v| v.as_str().unwrap())
                .collect();
            assert!(
                strings.len() >= 2 && strings.len().is_multiple_of(2),
                "a metric row is namespace, name, then dimension pairs: {row:?}"
            );
            found.push(MetricRef {
                namespace: strings[0].to_owned(),
                name: strings[1].to_owned(),
                dimensions: strings[2..]
                    .chunks(2)
                    .map(|p| (p[0].to_owned(), p[1].to_owned()))
                    .collect(),
            });
        }
        assert!(
            used.is_subset(&ids),
            "{}: expressions use {used:?}, the widget defines {ids:?}",
            widget["properties"]["title"]
        );
    }
    found
}

/// Checks one metric named by an alarm or the dashboard against what the
/// service and AWS emit.
fn check_metric(metric: &MetricRef, where_: &str) {
    let methods: BTreeSet<&str> = payment::pb::METHODS
        .iter()
        .map(|m| m.path.rsplit('/').next().unwrap())
        .collect();
    if metric.namespace == SERVICE_NAMESPACE {
        assert!(
            SERVICE_METRICS.contains(&metric.name.as_str()),
            "{where_}: {} is not a metric the service emits ({SERVICE_METRICS:?})",
            metric.show()
        );
        let names: Vec<&str> = metric.dimensions.iter().map(|(k, _)| k.as_str()).collect();
        assert!(
            SERVICE_DIMENSION_SETS.contains(&names.as_slice()),
            "{where_}: {} is not emitted under those dimensions",
            metric.show()
        );
        for (name, value) in &metric.dimensions {
            match name.as_str() {
                "Service" => assert_eq!(value, SERVICE_DIMENSION, "{where_}: {}", metric.show()),
                "Code" => assert!(
                    value == "*" || GRPC_CODES.contains(&value.as_str()),
                    "{where_}: {} names no gRPC code",
                    metric.show()
                ),
                "Method" => assert!(
                    value == "*" || methods.contains(value.as_str()),
                    "{where_}: {} names no method of the contract",
                    metric.show()
                ),
                _ => unreachable!(),
            }
        }
        return;
    }
    let (_, dimensions, names) = AWS_METRICS
        .iter()
        .filter(|(namespace, _, _)| *namespace == metric.namespace)
        .find(|(_, dimensions, _)| {
            dimensions
                .iter()
                .zip(&metric.dimensions)
                .all(|((k, v), (name, value))| k == name && (*v == "*" || v == value))
        })
        .unwrap_or_else(|| {
            panic!(
                "{where_}: {} is no metric AWS publishes here",
                metric.show()
            )
        });
    assert!(
        names.contains(&metric.name.as_str()),
        "{where_}: {} is not one of {names:?}",
        metric.show()
    );
    let got: Vec<(&str, &str)> = metric
        .dimensions
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got.len(), dimensions.len(), "{where_}: {}", metric.show());
    for ((name, value), (want_name, want_value)) in got.iter().zip(dimensions.iter()) {
        assert_eq!(name, want_name, "{where_}: {}", metric.show());
        if *want_value != "*" {
            assert_eq!(value, want_value, "{where_}: {}", metric.show());
        }
    }
}

/// Every metric an alarm or the dashboard names is one the service emits
/// (SERVICE_METRICS, under its dimension sets, a real method and code) or
/// one AWS publishes for the function, the API or the tables; and the
/// dashboard shows every metric of the service.
#[test]
fn every_metric_the_alarms_and_the_dashboard_name_is_emitted() {
    let template = template();
    let (accounts, ledger) = tables(&template);
    for id in resources_of_type(&template, "AWS::CloudWatch::Alarm") {
        let (_, metrics, _) = alarm_watches(properties(&template, &id), &id);
        for metric in &metrics {
            check_metric(metric, &id);
        }
    }
    let body = dashboard_body(&template);
    let metrics = dashboard_metrics(&body);
    for metric in &metrics {
        check_metric(metric, "the dashboard");
        if metric.namespace == "AWS/DynamoDB" {
            let table = &metric.dimensions[0].1;
            assert!(
                *table == format!("${{{accounts}}}") || *table == format!("${{{ledger}}}"),
                "the dashboard: {}",
                metric.show()
            );
        }
    }
    let shown: BTreeSet<&str> = metrics
        .iter()
        .filter(|m| m.namespace == SERVICE_NAMESPACE)
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(
        shown,
        SERVICE_METRICS.into_iter().collect(),
        "the dashboard shows every metric the service emits"
    );
}

/// The dashboard: valid JSON once substituted, the widgets the issue asks
/// for, and an alarm widget listing every alarm.
#[test]
fn the_dashboard_is_json_with_every_alarm_and_the_asked_for_graphs() {
    let template = template();
    let dashboard = only_resource_of_type(&template, "AWS::CloudWatch::Dashboard");
    assert_eq!(
        ref_target(get(
            properties(&template, &dashboard),
            "DashboardName",
            &dashboard
        )),
        Some("AWS::StackName")
    );
    let body = dashboard_body(&template);
    let widgets = body["widgets"].as_array().expect("widgets");
    let alarms: BTreeSet<String> = widgets
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().expect("alarms").iter())
        .map(|a| a.as_str().expect("an alarm ARN").to_owned())
        .collect();
    let declared: BTreeSet<String> = resources_of_type(&template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|id| format!("${{{id}.Arn}}"))
        .collect();
    assert_eq!(alarms, declared, "the alarm widget lists every alarm");
    for widget in widgets.iter().filter(|w| w["type"] == "metric") {
        let props = &widget["properties"];
        assert_eq!(props["region"], "${AWS::Region}", "{}", props["title"]);
        for key in ["x", "y", "width", "height"] {
            assert!(widget[key].is_u64(), "{}: {key}", props["title"]);
        }
        assert!(widget["x"].as_u64().unwrap() + widget["width"].as_u64().unwrap() <= 24);
    }
    let expressions: Vec<String> = widgets
        .iter()
        .flat_map(|w| w["properties"]["metrics"].as_array().into_iter().flatten())
        .filter_map(|row| row[0]["expression"].as_str().map(str::to_owned))
        .collect();
    let has = |needle: &str| expressions.iter().any(|e| e.contains(needle));
    // calls/s by method; p50 and p99 by method; calls by code.
    assert!(has("Service,Method} MetricName=\"Calls\"") && has("'Sum', 60) / 60"));
    assert!(has("MetricName=\"Latency\"") && has("'p50', 60)") && has("'p99', 60)"));
    assert!(has("Service,Code} MetricName=\"Calls\""));
    // DynamoDB requests and WCU per payment.
    assert!(has("requests / payments") && has("wcu / payments"));
}

/// X-Ray and JSON logs on the function, and the metrics' namespace and
/// service name in its environment.
#[test]
fn the_function_is_traced_logs_json_and_knows_its_metrics_namespace() {
    let template = template();
    let function = properties(&template, FUNCTION);
    // SAM turns this into TracingConfig Mode Active and adds the managed
    // policy AWSXrayWriteOnlyAccess to the function's role (the cloud
    // end-to-end test reads both back).
    assert_eq!(get(function, "Tracing", FUNCTION).as_str(), Some("Active"));
    let logging = get(function, "LoggingConfig", FUNCTION);
    assert_eq!(
        get(logging, "LogFormat", "LoggingConfig").as_str(),
        Some("JSON")
    );
    let variables = get(
        get(function, "Environment", FUNCTION),
        "Variables",
        "Environment",
    );
    assert_eq!(
        ref_target(get(variables, "PAYMENT_METRICS_NAMESPACE", "Variables")),
        Some("MetricsNamespace")
    );
    assert_eq!(
        ref_target(get(variables, "PAYMENT_METRICS_SERVICE", "Variables")),
        Some("AWS::StackName")
    );
    let parameters = get(&template, "Parameters", "template");
    let namespace = get(parameters, "MetricsNamespace", "Parameters");
    assert_eq!(
        get(namespace, "Default", "MetricsNamespace").as_str(),
        Some("PaymentService")
    );
}

/// payment-events: both tables stream what the ledger's decoder needs, the
/// function is told the tables and the bus as the code reads them, each
/// stream reaches it through a mapping that reports the earliest failed
/// record, retries a bounded number of times and then sends the batch to
/// the on-failure queue; and it may do exactly that (read the streams, put
/// on the bus, send to the queue).
#[test]
fn the_events_function_reads_both_streams_and_gives_up_to_the_failure_queue() {
    use payment::events::BATCH_RECORDS_MAX;
    use payment::events::publisher::{PUT_EVENTS_ENTRIES_MAX, PUT_EVENTS_TIMEOUT};
    use payment::settings::EVENT_BUS_ENV;
    const EVENTS: &str = "EventsFunction";
    let template = template();
    let (accounts, ledger) = tables(&template);
    for table in [&accounts, &ledger] {
        let stream = get(properties(&template, table), "StreamSpecification", table);
        assert_eq!(
            get(stream, "StreamViewType", table).as_str(),
            Some(payment::ledger::stream::STREAM_VIEW_TYPE),
            "{table}'s stream"
        );
    }

    assert_eq!(
        resource_type(&template, EVENTS),
        "AWS::Serverless::Function"
    );
    let binary = get(
        get(
            get(resource(&template, EVENTS), "Metadata", EVENTS),
            "BuildProperties",
            EVENTS,
        ),
        "Binary",
        EVENTS,
    );
    assert_eq!(binary.as_str(), Some("payment-events"));
    let function = properties(&template, EVENTS);
    let variables = get(get(function, "Environment", EVENTS), "Variables", EVENTS);
    let env_ref = |name: &str| {
        ref_target(get(variables, name, EVENTS))
            .unwrap_or_else(|| panic!("{EVENTS}'s {name} must be a !Ref"))
            .to_owned()
    };
    assert_eq!(env_ref(ACCOUNTS_TABLE_ENV), accounts);
    assert_eq!(env_ref(LEDGER_TABLE_ENV), ledger);
    let bus = env_ref(EVENT_BUS_ENV);
    assert_eq!(resource_type(&template, &bus), "AWS::Events::EventBus");
    // A batch's PutEvents calls, one after another, fit in the Timeout.
    let calls = BATCH_RECORDS_MAX.div_ceil(PUT_EVENTS_ENTRIES_MAX) as u64;
    let timeout = get(function, "Timeout", EVENTS).as_u64().expect("Timeout");
    assert!(
        timeout >= calls * PUT_EVENTS_TIMEOUT.as_secs(),
        "{EVENTS}'s Timeout {timeout} s < {calls} PutEvents calls of {PUT_EVENTS_TIMEOUT:?}"
    );

    let queue = only_resource_of_type(&template, "AWS::SQS::Queue");
    let mut streams = BTreeSet::new();
    for id in resources_of_type(&template, "AWS::Lambda::EventSourceMapping") {
        let props = properties(&template, &id);
        let field = |name: &str| get(props, name, &id);
        assert_eq!(ref_target(field("FunctionName")), Some(EVENTS), "{id}");
        let (table, attribute) =
            get_att(field("EventSourceArn")).expect("!GetAtt <table>.StreamArn");
        assert_eq!(attribute, "StreamArn", "{id}");
        streams.insert(table.clone());
        assert_eq!(
            field("StartingPosition").as_str(),
            Some("TRIM_HORIZON"),
            "{id}"
        );
        assert_eq!(
            field("BatchSize").as_u64(),
            Some(BATCH_RECORDS_MAX as u64),
            "{id}"
        );
        assert_eq!(
            field("ParallelizationFactor").as_u64(),
            Some(1),
            "{id}: order per shard"
        );
        let types: Vec<&str> = sequence(field("FunctionResponseTypes"), "FunctionResponseTypes")
            .iter()
            .map(|t| string(t, "a response type"))
            .collect();
        assert_eq!(types, ["ReportBatchItemFailures"], "{id}");
        assert_eq!(
            field("BisectBatchOnFunctionError").as_bool(),
            Some(true),
            "{id}"
        );
        // Bounded: -1 (the default) would retry until the record expires.
        let retries = field("MaximumRetryAttempts")
            .as_i64()
            .expect("MaximumRetryAttempts");
        assert!((0..=10_000).contains(&retries), "{id}: {retries}");
        let age = field("MaximumRecordAgeInSeconds")
            .as_i64()
            .expect("MaximumRecordAgeInSeconds");
        assert!(
            (60..86_400).contains(&age),
            "{id}: {age} (the stream keeps 24 h)"
        );
        let destination = get(
            get(field("DestinationConfig"), "OnFailure", &id),
            "Destination",
            &id,
        );
        assert_eq!(
            get_att(destination),
            Some((queue.clone(), "Arn".to_owned())),
            "{id}"
        );
        // The ledger table's every record reaches the function (nothing it
        // would have to report is filtered away); the accounts table's
        // only INSERTs (its MODIFYs are balance shards' state).
        let filters = props.get("FilterCriteria");
        if table == ledger {
            assert!(filters.is_none(), "{id} must not filter the ledger stream");
        } else {
            let patterns: Vec<serde_json::Value> =
                sequence(get(filters.expect("a filter"), "Filters", &id), "Filters")
                    .iter()
                    .map(|f| {
                        serde_json::from_str(string(get(f, "Pattern", &id), "Pattern")).unwrap()
                    })
                    .collect();
            assert_eq!(
                patterns,
                [serde_json::json!({"eventName": ["INSERT"]})],
                "{id}"
            );
        }
    }
    assert_eq!(streams, BTreeSet::from([accounts.clone(), ledger.clone()]));

    // Exactly its permissions: the two streams, the bus, the queue.
    let mut granted = BTreeSet::new();
    for policy in sequence(get(function, "Policies", EVENTS), "Policies") {
        for statement in sequence(get(policy, "Statement", "policy"), "Statement") {
            let actions: Vec<String> = match get(statement, "Action", "statement") {
                Value::String(one) => vec![one.clone()],
                many => sequence(many, "Action")
                    .iter()
                    .map(|a| string(a, "an action").to_owned())
                    .collect(),
            };
            let targets: Vec<(String, String)> = match get(statement, "Resource", "statement") {
                Value::Sequence(list) => {
                    list.iter().map(|r| get_att(r).expect("!GetAtt")).collect()
                }
                one => vec![get_att(one).expect("!GetAtt")],
            };
            for action in &actions {
                for target in &targets {
                    granted.insert((action.clone(), target.0.clone(), target.1.clone()));
                }
            }
        }
    }
    let mut expected = BTreeSet::new();
    for action in [
        "DescribeStream",
        "GetRecords",
        "GetShardIterator",
        "ListStreams",
    ] {
        for table in [&accounts, &ledger] {
            expected.insert((
                format!("dynamodb:{action}"),
                table.clone(),
                "StreamArn".to_owned(),
            ));
        }
    }
    expected.insert(("events:PutEvents".to_owned(), bus.clone(), "Arn".to_owned()));
    expected.insert((
        "sqs:SendMessage".to_owned(),
        queue.clone(),
        "Arn".to_owned(),
    ));
    assert_eq!(granted, expected);
}
