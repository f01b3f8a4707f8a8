#!/usr/bin/env python3
"""The local AWS cloud's helpers (scripts/cloud.sh), run with the SAM CLI's
Python (.tools/venv, which has boto3 and SAM's YAML reader):

  cloud.py template IN OUT        the template as `sam build` would hand it to
                                  `sam deploy`: each function's CodeUri is its
                                  built folder beside OUT, x86_64, no build Metadata
  cloud.py state STACK PORT OUT   the deployed stack's facts as JSON (API URL,
                                  Cognito ids and the service client's secret)
  cloud.py token admin            a token from the emulated Cognito: client
                                  credentials with scope payments/admin
  cloud.py token user EMAIL       an ordinary user's: created in the user pool if
                                  missing, signed in through the Hosted UI's
                                  authorization code flow with PKCE (the web client)
  cloud.py token stranger         for the tests: client credentials of an app client
                                  of the same pool that the authorizer does not list
                                  as an audience (created once)
  cloud.py token short-lived      for the tests: client credentials of an app client
                                  whose access tokens live 1 s (created once)
  cloud.py invocations            how many times the function has run (START lines
                                  in its CloudWatch Logs), for the tests
  cloud.py subscribe NAME         a team's subscription to the stack's event bus, as
                                  docs/events.md shows it: an SQS queue NAME (with the
                                  policy letting the bus send to it) and a rule for every
                                  event of the ledger's source; prints the queue's URL
  cloud.py receive QUEUE_URL      for the tests: the messages waiting in a queue (each
                                  received once and deleted), as JSON: body and SentTimestamp
  cloud.py observability          for the tests: what the emulator holds of the
                                  stack's alarms, dashboard, the function's tracing,
                                  logging and role, and its log lines, as JSON

`token` reads .data/cloud/state.json (CLOUD_STATE overrides) and prints the
access token. The AWS calls go to AWS_ENDPOINT_URL (the emulator).
"""

import base64
import hashlib
import html.parser
import json
import os
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request

FUNCTION = "PaymentFunction"
# Every function of the template, each built into a folder of its name.
FUNCTIONS = ["PaymentFunction", "EventsFunction"]
# The events' source (payment::events::SOURCE).
EVENT_SOURCE = "payment.ledger"
# Every HTTP call here is bounded.
HTTP_TIMEOUT_S = 20
# The password of the users `token user` creates (local emulator only).
LOCAL_USER_PASSWORD = "Local-cloud-password-1"


def template(source, target):
    from samcli.yamlhelper import yaml_dump, yaml_parse

    with open(source) as f:
        doc = yaml_parse(f.read())
    for name in FUNCTIONS:
        function = doc["Resources"][name]
        function.pop("Metadata", None)
        function["Properties"]["CodeUri"] = name
        # The emulator runs the bootstrap on this machine and does not enforce
        # Architectures; say what it really is.
        function["Properties"]["Architectures"] = ["x86_64"]
    with open(target, "w") as f:
        f.write(yaml_dump(doc))


def state(stack, port, target):
    import boto3

    cfn = boto3.client("cloudformation")
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    pool, service = outputs["UserPoolId"], outputs["UserPoolServiceClientId"]
    secret = boto3.client("cognito-idp").describe_user_pool_client(
        UserPoolId=pool, ClientId=service
    )["UserPoolClient"]["ClientSecret"]
    api_url = outputs["ApiUrl"]
    api_id = urllib.parse.urlsplit(api_url).hostname.split(".", 1)[0]
    resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    facts = {
        "stack": stack,
        "port": int(port),
        "endpoint": f"http://127.0.0.1:{port}",
        # The API as the stack's output names it: http://<id>.execute-api.localhost:<port>
        "api_url": api_url,
        "api_id": api_id,
        # The same API addressed by path, for clients that cannot resolve
        # *.localhost (the emulator's own alternative to the Host header).
        "gateway_url": f"http://127.0.0.1:{port}/_aws/execute-api/{api_id}",
        "user_pool_id": pool,
        "issuer": outputs["CognitoIssuer"],
        "web_client_id": outputs["UserPoolClientId"],
        "service_client_id": service,
        "service_client_secret": secret,
        "token_url": f"http://127.0.0.1:{port}/oauth2/token",
        "authorize_url": f"http://127.0.0.1:{port}/oauth2/authorize",
        "function_name": physical[FUNCTION],
        "accounts_table": outputs["AccountsTableName"],
        "ledger_table": outputs["LedgerTableName"],
        "events_function_name": physical["EventsFunction"],
        "event_bus_name": outputs["EventBusName"],
        "event_bus_arn": outputs["EventBusArn"],
        "events_failure_queue_url": outputs["EventsFailureQueueUrl"],
    }
    with open(target, "w") as f:
        json.dump(facts, f, indent=2)


def load_state():
    path = os.environ.get("CLOUD_STATE") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", ".data", "cloud", "state.json"
    )
    with open(path) as f:
        return json.load(f)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def post_form(url, fields, headers=None, follow=True):
    data = urllib.parse.urlencode(fields).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers=headers or {})
    request.add_header("content-type", "application/x-www-form-urlencoded")
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def token_admin(facts):
    basic = base64.b64encode(
        f"{facts['service_client_id']}:{facts['service_client_secret']}".encode()
    ).decode()
    status, _, body = post_form(
        facts["token_url"],
        {"grant_type": "client_credentials", "scope": "payments/admin"},
        {"authorization": f"Basic {basic}"},
    )
    if status != 200:
        sys.exit(f"cloud.py: client_credentials token: HTTP {status}: {body[:300]!r}")
    return json.loads(body)["access_token"]


class HiddenFields(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.fields = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("type") == "hidden" and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""


def ensure_user(facts, email):
    import boto3

    idp = boto3.client("cognito-idp")
    try:
        idp.admin_get_user(UserPoolId=facts["user_pool_id"], Username=email)
    except idp.exceptions.UserNotFoundException:
        idp.admin_create_user(
            UserPoolId=facts["user_pool_id"],
            Username=email,
            UserAttributes=[
                {"Name": "email", "Value": email},
                {"Name": "email_verified", "Value": "true"},
            ],
            MessageAction="SUPPRESS",
        )
    idp.admin_set_user_password(
        UserPoolId=facts["user_pool_id"], Username=email, Password=LOCAL_USER_PASSWORD, Permanent=True
    )


def token_user(facts, email):
    ensure_user(facts, email)
    client_id = facts["web_client_id"]
    # The template's first allowed origin is the web client's callback URL.
    redirect_uri = os.environ.get("PAYMENT_CLOUD_REDIRECT_URI", "http://localhost:5173")
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": "openid email profile",
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    with urllib.request.urlopen(f"{facts['authorize_url']}?{query}", timeout=HTTP_TIMEOUT_S) as page:
        form = HiddenFields()
        form.feed(page.read().decode())
    login = f"{facts['endpoint']}/login"
    status, headers, body = post_form(
        login, {**form.fields, "username": email, "password": LOCAL_USER_PASSWORD}, follow=False
    )
    location = headers.get("Location") or headers.get("location") or ""
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).get("code", [""])[0]
    if status not in (302, 303) or not code:
        sys.exit(f"cloud.py: Hosted UI sign-in: HTTP {status}, Location {location!r}: {body[:300]!r}")
    status, _, body = post_form(
        facts["token_url"],
        {
            "grant_type": "authorization_code",
            "client_id": client_id,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )
    if status != 200:
        sys.exit(f"cloud.py: authorization_code token: HTTP {status}: {body[:300]!r}")
    return json.loads(body)["access_token"]


def test_client(facts, name, **settings):
    """An extra app client of the stack's pool for the tests (client
    credentials, scope payments/admin), created once: (id, secret)."""
    import boto3

    idp = boto3.client("cognito-idp")
    pool = facts["user_pool_id"]
    for client in idp.list_user_pool_clients(UserPoolId=pool, MaxResults=60)["UserPoolClients"]:
        if client["ClientName"] == name:
            described = idp.describe_user_pool_client(UserPoolId=pool, ClientId=client["ClientId"])
            return client["ClientId"], described["UserPoolClient"]["ClientSecret"]
    created = idp.create_user_pool_client(
        UserPoolId=pool,
        ClientName=name,
        GenerateSecret=True,
        AllowedOAuthFlowsUserPoolClient=True,
        AllowedOAuthFlows=["client_credentials"],
        AllowedOAuthScopes=["payments/admin"],
        SupportedIdentityProviders=["COGNITO"],
        **settings,
    )["UserPoolClient"]
    return created["ClientId"], created["ClientSecret"]


def token_of(facts, client):
    return token_admin({**facts, "service_client_id": client[0], "service_client_secret": client[1]})


def invocations(facts):
    import boto3

    logs = boto3.client("logs")
    group = f"/aws/lambda/{facts['function_name']}"
    count, kwargs = 0, {"logGroupName": group, "filterPattern": "START RequestId"}
    # Bounded: 1000 pages of events is far beyond any test run.
    for _ in range(1000):
        try:
            page = logs.filter_log_events(**kwargs)
        except logs.exceptions.ResourceNotFoundException:
            return 0
        count += sum(1 for e in page["events"] if e["message"].startswith("START RequestId"))
        if not page.get("nextToken"):
            return count
        kwargs["nextToken"] = page["nextToken"]
    sys.exit("cloud.py: too many log pages")


def subscribe(facts, name):
    """What a consuming team deploys (docs/events.md, "Subscribing"): a queue,
    its policy, a rule on the bus and the queue as the rule's target."""
    import boto3

    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rule_arn = events.put_rule(
        Name=f"{name}-rule",
        EventBusName=facts["event_bus_name"],
        EventPattern=json.dumps({"source": [EVENT_SOURCE]}),
        State="ENABLED",
    )["RuleArn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(
        Rule=f"{name}-rule",
        EventBusName=facts["event_bus_name"],
        Targets=[{"Id": "queue", "Arn": queue_arn}],
    )
    return queue_url


def receive(queue_url):
    """Every message waiting now (up to 10 calls of 10), deleted once read."""
    import boto3

    sqs = boto3.client("sqs")
    messages = []
    for _ in range(10):
        page = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["SentTimestamp"]
        ).get("Messages", [])
        if not page:
            break
        for m in page:
            messages.append({"body": m["Body"], "sent_ms": int(m["Attributes"]["SentTimestamp"])})
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(page)],
        )
    return messages


def observability(facts):
    """The deployed alarms (DescribeAlarms), the dashboard (GetDashboard), the
    function's configuration (GetFunctionConfiguration), its role's managed
    policies and its log events (stream and message, in order), as one JSON
    document."""
    import boto3

    stack = facts["stack"]
    resources = boto3.client("cloudformation").describe_stack_resources(StackName=stack)["StackResources"]
    by_type = {}
    for r in resources:
        by_type.setdefault(r["ResourceType"], {})[r["LogicalResourceId"]] = r["PhysicalResourceId"]
    cloudwatch = boto3.client("cloudwatch")
    names = sorted(by_type.get("AWS::CloudWatch::Alarm", {}).values())
    alarms = []
    # DescribeAlarms takes at most 100 names a call.
    for i in range(0, len(names), 100):
        alarms += cloudwatch.describe_alarms(AlarmNames=names[i : i + 100], AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    dashboards = {}
    for logical, name in by_type.get("AWS::CloudWatch::Dashboard", {}).items():
        dashboards[logical] = cloudwatch.get_dashboard(DashboardName=name)
        dashboards[logical].pop("ResponseMetadata", None)
    function = boto3.client("lambda").get_function_configuration(FunctionName=facts["function_name"])
    function.pop("ResponseMetadata", None)
    role = function["Role"].rsplit("/", 1)[-1]
    policies = boto3.client("iam").list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    logs = boto3.client("logs")
    group = (function.get("LoggingConfig") or {}).get("LogGroup") or f"/aws/lambda/{facts['function_name']}"
    lines, kwargs = [], {"logGroupName": group}
    for _ in range(1000):
        page = logs.filter_log_events(**kwargs)
        lines += [{"stream": e["logStreamName"], "message": e["message"]} for e in page["events"]]
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    print(
        json.dumps(
            {
                "resources": {
                    logical: physical for kind in by_type.values() for logical, physical in kind.items()
                },
                "alarms": alarms,
                "dashboards": dashboards,
                "function": function,
                "role_policies": sorted(p["PolicyArn"] for p in policies),
                "log_group": group,
                "log_events": lines,
            },
            default=str,
        )
    )


def main(argv):
    match argv:
        case ["template", source, target]:
            template(source, target)
        case ["state", stack, port, target]:
            state(stack, port, target)
        case ["token", "admin"]:
            print(token_admin(load_state()))
        case ["token", "user", email]:
            print(token_user(load_state(), email))
        case ["token", "stranger"]:
            facts = load_state()
            print(token_of(facts, test_client(facts, "e2e-stranger")))
        case ["token", "short-lived"]:
            facts = load_state()
            client = test_client(
                facts,
                "e2e-short-lived",
                AccessTokenValidity=1,
                TokenValidityUnits={"AccessToken": "seconds"},
            )
            print(token_of(facts, client))
        case ["invocations"]:
            print(invocations(load_state()))
        case ["subscribe", name]:
            print(subscribe(load_state(), name))
        case ["receive", queue_url]:
            print(json.dumps(receive(queue_url)))
        case ["observability"]:
            observability(load_state())
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
