// A reverse proxy on 127.0.0.1 that serves `upstream` under a path prefix,
// the way a Lambda function URL under `cargo lambda watch` or an API gateway
// stage does: PREFIX/payment.v1.PaymentService/X goes to upstream/payment.v1.PaymentService/X.
// Requests outside the prefix get 404, so a client that drops the prefix fails.

import dns from "node:dns";
import http from "node:http";

/**
 * Resolves `localhost` and its subdomains (the emulated API Gateway's
 * http://<api-id>.execute-api.localhost:<port>) to loopback, as browsers do
 * (RFC 6761) and getaddrinfo here does not; other names as usual.
 */
function lookup(hostname, options, callback) {
  if (hostname === "localhost" || hostname.endsWith(".localhost")) {
    const address = { address: "127.0.0.1", family: 4 };
    return options.all ? callback(null, [address]) : callback(null, address.address, address.family);
  }
  return dns.lookup(hostname, options, callback);
}

/** Resolves to { endpoint, seen, close }; `seen` lists the paths requested. */
export function startPrefixProxy(upstream, prefix = "/lambda-url/payment-lambda") {
  const seen = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (!req.url.startsWith(`${prefix}/`)) {
      res.writeHead(404, { "content-type": "text/plain" }).end(`not under ${prefix}\n`);
      return;
    }
    const target = new URL(upstream.replace(/\/$/, "") + req.url.slice(prefix.length));
    const forward = http.request(
      target,
      { method: req.method, headers: { ...req.headers, host: target.host }, lookup },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on("error", () => res.destroy());
    req.pipe(forward);
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({
        endpoint: `http://127.0.0.1:${port}${prefix}`,
        seen,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
