"""Runs the ministack emulator (`make cloud`) with three fixes, two to its
CloudFormation and one to its API Gateway, run with .tools/ministack/bin/python.

The fix: ministack 1.5.33's CloudFormation stores an AWS::ApiGatewayV2::Api's
CorsConfiguration as the template spells it (AllowOrigins, AllowHeaders, ...),
while its API Gateway reads the API's CORS in the service's own shape
(allowOrigins, allowHeaders, ...), as CreateApi stores it. So a CORS
configuration deployed by CloudFormation is never seen: every preflight gets
403 "CORS origin denied" and no answer carries CORS headers. Real
CloudFormation maps the property onto the API's Cors object; this does the
same, in the emulator's provisioner, before the API is stored. Nothing about
the API is changed after the deploy: the template's CorsConfiguration is what
the emulator serves.

The second fix: on an HTTP API with CORS, AWS puts the API's CORS headers on
the integration's answer in place of any the function set; ministack 1.5.33
adds its own (Access-Control-Allow-Origin, ...) beside the function's
(access-control-allow-origin, ...), a dict update that differs only in case,
so the answer carries each header twice. A browser refuses an answer with two
Access-Control-Allow-Origin values ("contains multiple values"), so the web
app could not call the deployed API. This drops the function's
access-control-* headers from a proxied Lambda answer before the gateway adds
its own, as AWS does.

The third fix: ministack 1.5.33's CloudFormation refuses an
AWS::CloudWatch::Alarm with Metrics (an alarm on a metric math expression:
"Properties.Metrics (metric math) is not supported"), so the whole stack
rolled back on the template's rate and DynamoDB alarms. Real CloudFormation
creates them (PutMetricAlarm with Metrics). This stores such an alarm as
DescribeAlarms describes one on AWS: its Metrics (the template's
MetricDataQuery list), no MetricName, Namespace, Statistic or Period, empty
Dimensions, and every other property as the emulator stores it for an alarm
on one metric. The emulator does not evaluate it (nor EMF metrics at all):
it stays INSUFFICIENT_DATA.

The launcher refuses to start if the emulator no longer has the flaws it
fixes (a newer ministack may have fixed it): then delete this file and start
ministack directly.
"""

import inspect
import sys

from ministack.services.cloudformation import provisioners

API = "AWS::ApiGatewayV2::Api"
FLAW = 'api["corsConfiguration"] = props["CorsConfiguration"]'


def api_cors(cors):
    """CloudFormation's Cors property (PascalCase) in the API's own shape."""
    return {key[:1].lower() + key[1:]: value for key, value in cors.items()}


CORS_FLAW = "resp_headers.update(_cors_response_headers("


def without_cors(response):
    """A proxied Lambda answer (status, headers, body) without the function's CORS headers."""
    status, headers, body = response
    if isinstance(headers, dict):
        headers = {k: v for k, v in headers.items() if not k.lower().startswith("access-control-")}
    return status, headers, body


METRIC_MATH_FLAW = "(metric math) is not supported"


def metric_math_query(query):
    """A template's MetricDataQuery as PutMetricAlarm stores it (ReturnData a bool)."""
    query = dict(query)
    if isinstance(query.get("ReturnData"), str):
        query["ReturnData"] = query["ReturnData"].lower() == "true"
    return query


def with_metric_math(record):
    """The emulator's alarm record builder, taught alarms on metric math."""

    def build(name, props):
        metrics = props.get("Metrics") if isinstance(props, dict) else None
        if not metrics:
            return record(name, props)
        alarm = record(name, {**props, "Metrics": None, "MetricName": "-", "Namespace": "-"})
        for key in ("MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Period", "Unit"):
            alarm.pop(key, None)
        alarm["Dimensions"] = []
        alarm["Metrics"] = [metric_math_query(q) for q in metrics]
        return alarm

    return build


def with_api_cors(props):
    if isinstance(props, dict) and isinstance(props.get("CorsConfiguration"), dict):
        return {**props, "CorsConfiguration": api_cors(props["CorsConfiguration"])}
    return props


def main():
    # The emulator binds every interface unless told otherwise; this project
    # only ever runs it on loopback (scripts/cloud-lib.sh sets
    # BIND_HOST=127.0.0.1), and the launcher refuses anything else.
    import os

    if os.environ.get("BIND_HOST") != "127.0.0.1":
        sys.exit("ministack-launch: BIND_HOST=127.0.0.1 is required (the emulator must listen on loopback only)")
    handlers = provisioners._RESOURCE_HANDLERS[API]
    create, update = handlers["create"], handlers["update"]
    if FLAW not in inspect.getsource(create):
        sys.exit(
            "ministack-launch: this ministack stores an HTTP API's CorsConfiguration differently "
            "from 1.5.33; check whether the CORS fix is still needed (scripts/ministack-launch.py)"
        )
    handlers["create"] = lambda logical_id, props, stack_name: create(
        logical_id, with_api_cors(props), stack_name
    )
    handlers["update"] = lambda physical_id, old_props, new_props, stack_name, logical_id=None: update(
        physical_id, with_api_cors(old_props), with_api_cors(new_props), stack_name, logical_id
    )

    record = provisioners._cw_metric_alarm_record
    if METRIC_MATH_FLAW not in inspect.getsource(record):
        sys.exit(
            "ministack-launch: this ministack's CloudFormation no longer refuses alarms on metric math; "
            "check whether the metric math fix is still needed (scripts/ministack-launch.py)"
        )
    provisioners._cw_metric_alarm_record = with_metric_math(record)

    from ministack.services import apigateway

    dispatch = inspect.getsource(apigateway._handle_execute_in_scope)
    if CORS_FLAW not in dispatch or "await _invoke_lambda_proxy(" not in dispatch:
        sys.exit(
            "ministack-launch: this ministack adds an HTTP API's CORS headers differently "
            "from 1.5.33; check whether the CORS header fix is still needed (scripts/ministack-launch.py)"
        )
    invoke = apigateway._invoke_lambda_proxy

    async def invoke_without_function_cors(*args, **kwargs):
        return without_cors(await invoke(*args, **kwargs))

    apigateway._invoke_lambda_proxy = invoke_without_function_cors

    from ministack.app import main as ministack_main

    sys.argv = ["ministack"]
    ministack_main()


if __name__ == "__main__":
    main()
