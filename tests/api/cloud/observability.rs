//! What on-call gets, as deployed: the emulator's view of the stack's
//! alarms, dashboard, tracing and logging (scripts/cloud.py observability:
//! DescribeAlarms, GetDashboard, GetFunctionConfiguration, the role's
//! policies, FilterLogEvents), each against template.yaml; and the
//! function's log: JSON lines, each call's carrying its request id, the EMF
//! records in the template's namespace.

use super::stack::Cloud;
use super::template;
// The metrics the service emits (the contract with its telemetry;
// tests/template.rs checks the template's alarms and dashboard against it).
use payment::telemetry::emf::METRICS as SERVICE_METRICS;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Checks the alarms, the dashboard, the function's configuration and its
/// log, as the emulator holds them, against template.yaml.
pub(super) fn check_observability(cloud: &Cloud) {
    let template = template();
    let deployed = Deployed {
        seen: serde_json::from_str(&cloud.cloud_py(&["observability"]))
            .expect("observability JSON"),
        stack: cloud.get("stack"),
        namespace: template["Parameters"]["MetricsNamespace"]["Default"]
            .as_str()
            .expect("MetricsNamespace's default (the deploy keeps it)")
            .to_owned(),
        template,
    };
    deployed.check_alarms();
    deployed.check_dashboard();
    deployed.check_function();
    deployed.check_log();
}

/// What scripts/cloud.py observability saw of the stack, and the template
/// it was deployed from.
struct Deployed {
    seen: serde_json::Value,
    template: Value,
    stack: String,
    namespace: String,
}

/// What the function's log holds, counted over its streams.
#[derive(Default)]
struct LogCounts {
    invocations: usize,
    calls: usize,
    emf: usize,
}

impl Deployed {
    /// The physical id of the stack's resource `id`.
    fn physical(&self, id: &str) -> String {
        self.seen["resources"][id]
            .as_str()
            .unwrap_or_else(|| panic!("the deployed stack has no {id}"))
            .to_owned()
    }

    fn alarms(&self) -> &Vec<serde_json::Value> {
        self.seen["alarms"].as_array().expect("alarms")
    }

    fn alarm_named(&self, name: &str) -> &serde_json::Value {
        self.alarms()
            .iter()
            .find(|a| a["AlarmName"] == name)
            .unwrap_or_else(|| panic!("DescribeAlarms has no {name}"))
    }

    /// What a `!Ref` or `${...}` of the template resolved to in this deployment.
    fn value(&self, var: &str) -> String {
        match var {
            "AWS::StackName" => self.stack.clone(),
            "AWS::Region" => "us-east-1".to_owned(),
            "MetricsNamespace" => self.namespace.clone(),
            "AlarmTopicArn" => String::new(),
            _ => match (var.strip_suffix(".Arn"), var.strip_suffix(".QueueName")) {
                (Some(alarm), _) => self.alarm_named(&self.physical(alarm))["AlarmArn"]
                    .as_str()
                    .expect("AlarmArn")
                    .to_owned(),
                // A queue's physical id is its URL, which ends in its name.
                (_, Some(queue)) => self
                    .physical(queue)
                    .rsplit('/')
                    .next()
                    .expect("a queue URL")
                    .to_owned(),
                _ => self.physical(var),
            },
        }
    }

    /// The alarms, every property as the template resolves it.
    fn check_alarms(&self) {
        let (template, alarms) = (&self.template, self.alarms());
        let value = |var: &str| self.value(var);
        let physical = |id: &str| self.physical(id);
        let alarm_named = |name: &str| self.alarm_named(name);
        let resources = template["Resources"].as_mapping().expect("Resources");
        let mut declared = 0;
        for (id, resource) in resources {
            if resource["Type"] != "AWS::CloudWatch::Alarm" {
                continue;
            }
            declared += 1;
            let id = id.as_str().unwrap();
            let want = resolved(&resource["Properties"], &value).unwrap();
            let name = physical(id);
            assert_eq!(want["AlarmName"], name.as_str(), "{id}");
            let got = alarm_named(&name);
            for key in [
                "AlarmDescription",
                "ComparisonOperator",
                "EvaluationPeriods",
                "DatapointsToAlarm",
                "TreatMissingData",
                "MetricName",
                "Namespace",
                "Statistic",
                "ExtendedStatistic",
                "Period",
                "Unit",
            ] {
                if let Some(expected) = want.get(key) {
                    assert_eq!(&got[key], expected, "{id}: {key}");
                }
            }
            assert_eq!(
                got["Threshold"].as_f64(),
                want["Threshold"].as_f64(),
                "{id}: Threshold"
            );
            assert_eq!(
                got["Dimensions"],
                want.get("Dimensions")
                    .cloned()
                    .unwrap_or(serde_json::json!([])),
                "{id}: Dimensions"
            );
            assert_eq!(
                got["Metrics"],
                want.get("Metrics")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
                "{id}: Metrics"
            );
            // No AlarmTopicArn given: no actions.
            for key in ["AlarmActions", "OKActions"] {
                assert_eq!(got[key], serde_json::json!([]), "{id}: {key}");
            }
        }
        assert!(declared >= 10, "the template declares {declared} alarms");
        assert_eq!(
            alarms.len(),
            declared,
            "DescribeAlarms: the stack's alarms, no more"
        );
    }

    /// The dashboard: the template's body, substituted.
    fn check_dashboard(&self) {
        let Deployed {
            seen,
            template,
            stack,
            ..
        } = self;
        let value = |var: &str| self.value(var);
        let dashboard = &seen["dashboards"]["Dashboard"];
        assert_eq!(dashboard["DashboardName"], stack.as_str());
        let body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"].clone();
        let want: serde_json::Value =
            serde_json::from_str(resolved(&body, &value).unwrap().as_str().expect("a body"))
                .expect("the template's body is JSON");
        let got: serde_json::Value =
            serde_json::from_str(dashboard["DashboardBody"].as_str().expect("DashboardBody"))
                .expect("the deployed body is JSON");
        assert_eq!(got, want, "the deployed dashboard");
        let text = got.to_string();
        for metric in SERVICE_METRICS {
            assert!(
                text.contains(&format!("\"{metric}\""))
                    || text.contains(&format!("\\\"{metric}\\\"")),
                "the dashboard shows {metric}"
            );
        }
        assert!(text.contains(&format!("Service=\\\"{stack}\\\"")), "{text}");
    }

    /// The function: X-Ray on, JSON logs, the metrics' namespace and service.
    fn check_function(&self) {
        let Deployed {
            seen,
            stack,
            namespace,
            ..
        } = self;
        let function = &seen["function"];
        assert_eq!(function["TracingConfig"]["Mode"], "Active");
        assert_eq!(function["LoggingConfig"]["LogFormat"], "JSON");
        let variables = &function["Environment"]["Variables"];
        assert_eq!(variables["PAYMENT_METRICS_NAMESPACE"], namespace.as_str());
        assert_eq!(variables["PAYMENT_METRICS_SERVICE"], stack.as_str());
        let policies: Vec<&str> = seen["role_policies"]
            .as_array()
            .expect("policies")
            .iter()
            .filter_map(|p| p.as_str())
            .collect();
        assert!(
            policies.contains(&"arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"),
            "SAM gives the traced function's role X-Ray's policy: {policies:?}"
        );
    }

    /// The log: every line the function wrote is JSON; a call's lines (its
    /// log line, its EMF record) carry its request id.
    fn check_log(&self) {
        let events = self.seen["log_events"].as_array().expect("log events");
        let mut streams: BTreeMap<&str, Vec<&str>> = Default::default();
        for event in events {
            streams
                .entry(event["stream"].as_str().expect("stream"))
                .or_default()
                .push(event["message"].as_str().expect("message"));
        }
        let mut counts = LogCounts::default();
        for (stream, lines) in &streams {
            self.check_stream(stream, lines, &mut counts);
        }
        let LogCounts {
            invocations,
            calls,
            emf,
        } = counts;
        eprintln!(
            "cloud: {} log streams, {invocations} invocations, {calls} call lines with their request id, {emf} EMF records",
            streams.len()
        );
        assert!(
            invocations > 50,
            "the function's START lines: {invocations}"
        );
        assert!(
            calls >= invocations,
            "every invocation logs its call: {calls} for {invocations}"
        );
        assert!(
            emf > 0,
            "no EMF record in the function's log: is telemetry on in payment-lambda?"
        );
    }

    /// The lines of one log stream (one container).
    fn check_stream(&self, stream: &str, lines: &[&str], counts: &mut LogCounts) {
        // The invocations of this stream, by their START lines. A line is
        // matched to its invocation by the request id it carries, not by
        // where it sits: the emulator reads a function's output on its own
        // schedule, so a call's last line can land after the next
        // invocation's START (seen once in PITFALLS).
        let started: BTreeSet<String> = lines
            .iter()
            .filter_map(|line| platform_line(line))
            .filter(|(kind, _)| *kind == "start")
            .map(|(_, id)| id)
            .collect();
        counts.invocations += started.len();
        for line in lines {
            if platform_line(line).is_some() {
                continue;
            }
            self.check_line(stream, line, &started, counts);
        }
    }

    /// One line the function wrote: a JSON object naming only requests its
    /// container started; a call's line names exactly its own; an EMF
    /// record in the template's namespace, of the contract's metrics.
    fn check_line(
        &self,
        stream: &str,
        line: &str,
        started: &BTreeSet<String>,
        counts: &mut LogCounts,
    ) {
        let json: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{stream}: a log line that is not JSON ({e}): {line}"));
        assert!(json.is_object(), "{stream}: not a JSON object: {line}");
        let mut ids = Vec::new();
        request_ids(&json, &mut ids);
        assert!(
            ids.iter().all(|id| started.contains(id)),
            "{stream}: a line names a request this container never started: {line}"
        );
        let is_emf = json.get("_aws").is_some();
        let is_call = is_emf || line.contains("\"method\"") || line.contains("\"Method\"");
        if is_call {
            counts.calls += 1;
            let distinct: BTreeSet<&String> = ids.iter().collect();
            assert!(
                distinct.len() == 1,
                "{stream}: a call's line carries exactly its own request id: {line}"
            );
        }
        if is_emf {
            counts.emf += 1;
            let definition = &json["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(definition["Namespace"], self.namespace.as_str(), "{line}");
            assert_eq!(json["Service"], self.stack.as_str(), "{line}");
            for metric in definition["Metrics"].as_array().expect("Metrics") {
                let name = metric["Name"].as_str().expect("Name");
                assert!(
                    SERVICE_METRICS.contains(&name),
                    "{name} is not in the contract: {line}"
                );
            }
        }
    }
}

/// The template's value with its intrinsic functions resolved as this
/// deployment resolved them: `!Ref`/`${...}` through `value`, `!If` on the
/// one condition the alarms use (NotifyAlarmTopic: false, no topic is
/// given here), `AWS::NoValue` dropped.
fn resolved(v: &Value, value: &dyn Fn(&str) -> String) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    let one_key = |name: &str, tag: &str| -> Option<&Value> {
        match v {
            Value::Tagged(t) if t.tag == tag => Some(&t.value),
            Value::Mapping(m) if m.len() == 1 => m.get(name),
            _ => None,
        }
    };
    if let Some(target) = one_key("Ref", "Ref") {
        let target = target.as_str().expect("!Ref of a name");
        return (target != "AWS::NoValue").then(|| J::String(value(target)));
    }
    if let Some(text) = one_key("Fn::Sub", "Sub") {
        return Some(J::String(substituted(
            text.as_str().expect("!Sub string"),
            value,
        )));
    }
    if let Some(args) = one_key("Fn::If", "If") {
        let args = args.as_sequence().expect("!If [condition, then, else]");
        assert_eq!(args[0].as_str(), Some("NotifyAlarmTopic"), "{args:?}");
        return resolved(&args[2], value);
    }
    Some(match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => serde_json::from_str(&n.to_string()).expect("a number"),
        Value::String(s) => J::String(s.clone()),
        Value::Sequence(items) => {
            J::Array(items.iter().filter_map(|i| resolved(i, value)).collect())
        }
        Value::Mapping(map) => J::Object(
            map.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), resolved(v, value)?)))
                .collect(),
        ),
        Value::Tagged(t) => panic!("intrinsic !{} not handled here", t.tag),
    })
}

/// A `!Sub` string with each `${Var}` replaced by `value(Var)`.
fn substituted(text: &str, value: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').expect("${ closed");
        let var = &after[..end];
        match var.strip_prefix('!') {
            Some(literal) => out.push_str(&format!("${{{literal}}}")),
            None => out.push_str(&value(var)),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every request id a JSON log line carries, wherever it is.
fn request_ids(line: &serde_json::Value, found: &mut Vec<String>) {
    match line {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if matches!(
                    key.as_str(),
                    "requestId" | "RequestId" | "request_id" | "aws_request_id"
                ) && let Some(id) = value.as_str()
                {
                    found.push(id.to_owned());
                }
                request_ids(value, found);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| request_ids(i, found)),
        _ => {}
    }
}

/// Lambda's own lines: (kind, request id). Text on the emulator
/// (`START RequestId: <id> Version: ...`), JSON records on AWS with
/// LogFormat JSON (`{"type": "platform.start", "record": {"requestId": ...}}`).
fn platform_line(message: &str) -> Option<(&'static str, String)> {
    for (prefix, kind) in [
        ("START RequestId: ", "start"),
        ("END RequestId: ", "end"),
        ("REPORT RequestId: ", "report"),
    ] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let id = rest.split_whitespace().next().unwrap_or_default();
            return Some((kind, id.to_owned()));
        }
    }
    if message.starts_with("INIT_START") {
        return Some(("init", String::new()));
    }
    let json: serde_json::Value = serde_json::from_str(message).ok()?;
    let kind = json["type"].as_str()?.strip_prefix("platform.")?;
    let kind = match kind {
        "start" => "start",
        "runtimeDone" | "end" => "end",
        "report" => "report",
        _ => "init",
    };
    Some((
        kind,
        json["record"]["requestId"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}
