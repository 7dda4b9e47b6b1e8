// A real GraphQL client with persisted queries, for envoy-e2e
// (tests/persisted.rs): Apollo Client 4 with PersistedQueryLink (sha256 from
// node:crypto, hash-only queries as GET) over an HttpLink whose `fetch`
// records every HTTP exchange.
//
//   node persisted-client.mjs '<spec JSON>'
//
// spec:
//   url                the GraphQL endpoint (or $PERSISTED_CLIENT_URL)
//   mode               "run" (default): talk to `url`;
//                      "documents": no network at all: print the documents
//                      exactly as this client hashes and sends them (Apollo
//                      adds __typename), for a trusted-documents manifest
//   operations         [{name, query, variables}]
//   repeat             each operation runs this many times (default 1), one
//                      run after another, fetchPolicy "no-cache"
//   requestTimeoutMs   bound of one HTTP exchange (default 5000)
//   totalTimeoutMs     bound of the whole script (default 30000)
//
// Every HTTP request goes over a new TCP connection (node:http, agent:
// false, `Connection: close`), so that Envoy's kernel load balancing
// (SO_REUSEPORT) spreads them over its workers. A body is sent with its
// `content-length`, as fetch sends a string body.
//
// Output: one JSON report on stdout, also when the time is up (then
// `timedOut` is true and the exit code is 2):
//   {client, mode, documents: [{operation, body, sha256}],
//    requests: [{operation, run, method, path, hasQuery, sha256, status,
//                errors: [{message, code}], hasData, error}],
//    results:  [{operation, run, data, error: {name, message, errors} | null}],
//    timedOut}
// Anything Apollo logs goes to stderr.
import { createHash } from "node:crypto";
import http from "node:http";

import { ApolloClient, HttpLink, InMemoryCache, gql, version } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

// stdout carries the report only.
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);
console.debug = (...args) => console.error(...args);

const report = {
  client: { apolloClient: version, node: process.version },
  mode: null,
  documents: [],
  requests: [],
  results: [],
  timedOut: false,
};

let finished = false;
function finish(code, extra = {}) {
  if (finished) return;
  finished = true;
  Object.assign(report, extra);
  process.stdout.write(JSON.stringify(report) + "\n", () => process.exit(code));
}

let spec;
try {
  spec = JSON.parse(process.argv[2] ?? "{}");
} catch (e) {
  spec = {};
  finish(1, { fatal: `the spec (argv[2]) is not JSON: ${e.message}` });
}
const mode = spec.mode ?? "run";
const url = spec.url ?? process.env.PERSISTED_CLIENT_URL;
const repeat = spec.repeat ?? 1;
const requestTimeoutMs = spec.requestTimeoutMs ?? 5000;
const totalTimeoutMs = spec.totalTimeoutMs ?? 30000;
report.mode = mode;

const watchdog = setTimeout(
  () => finish(2, { timedOut: true, fatal: `not done within ${totalTimeoutMs} ms` }),
  totalTimeoutMs,
);
process.on("uncaughtException", (e) => finish(1, { fatal: `uncaught: ${e?.stack ?? e}` }));
process.on("unhandledRejection", (e) => finish(1, { fatal: `unhandled rejection: ${e?.stack ?? e}` }));

if (!["run", "documents"].includes(mode)) finish(1, { fatal: `unknown mode ${mode}` });
if (mode === "run" && !url) finish(1, { fatal: "no url: give spec.url or PERSISTED_CLIENT_URL" });

// Which operation and run the link is working for (runs are sequential).
let current = { operation: null, run: 0 };

// The hash the link computes, recording the exact text it hashed.
function sha256(text) {
  const hash = createHash("sha256").update(text).digest("hex");
  if (!report.documents.some((d) => d.sha256 === hash)) {
    report.documents.push({ operation: current.operation, body: text, sha256: hash });
  }
  return hash;
}

function headerObject(headers) {
  if (!headers) return {};
  if (typeof headers.entries === "function" && !Array.isArray(headers)) {
    return Object.fromEntries(headers.entries());
  }
  return Array.isArray(headers) ? Object.fromEntries(headers) : { ...headers };
}

// fetch over node:http, one new connection per request, bounded.
function httpFetch(target, init = {}) {
  return new Promise((resolve, reject) => {
    const headers = headerObject(init.headers);
    // As fetch does for a string body: a content-length, not chunked.
    if (init.body != null) headers["content-length"] = String(Buffer.byteLength(init.body));
    const request = http.request(
      new URL(target),
      { method: init.method ?? "GET", headers, agent: false },
      (response) => {
        const chunks = [];
        response.on("data", (c) => chunks.push(c));
        response.on("error", fail);
        response.on("end", () => {
          clearTimeout(timer);
          const headers = new Headers();
          for (const [name, value] of Object.entries(response.headers)) {
            for (const v of [].concat(value)) headers.append(name, v);
          }
          const status = response.statusCode ?? 0;
          const body = [204, 304].includes(status) ? null : Buffer.concat(chunks);
          resolve(new Response(body, { status, headers }));
        });
      },
    );
    const timer = setTimeout(
      () => request.destroy(new Error(`no answer within ${requestTimeoutMs} ms`)),
      requestTimeoutMs,
    );
    function fail(e) {
      clearTimeout(timer);
      reject(e);
    }
    request.on("error", fail);
    if (init.signal) {
      if (init.signal.aborted) request.destroy(new Error("aborted"));
      init.signal.addEventListener("abort", () => request.destroy(new Error("aborted")), { once: true });
    }
    if (init.body != null) request.write(init.body);
    request.end();
  });
}

// What a GraphQL request carries: from the URL (GET) or the JSON body.
function describeRequest(target, init) {
  const u = new URL(target);
  const method = (init.method ?? "GET").toUpperCase();
  let params = {};
  if (method === "GET") {
    for (const key of ["query", "operationName", "variables", "extensions"]) {
      const value = u.searchParams.get(key);
      if (value == null) continue;
      try {
        params[key] = key === "query" || key === "operationName" ? value : JSON.parse(value);
      } catch {
        params[key] = value;
      }
    }
  } else {
    try {
      params = JSON.parse(init.body ?? "{}");
    } catch {
      params = {};
    }
  }
  return {
    method,
    path: u.pathname + u.search,
    hasQuery: typeof params.query === "string" && params.query.length > 0,
    sha256: params.extensions?.persistedQuery?.sha256Hash ?? null,
    query: params.query ?? null,
  };
}

function graphqlErrors(body) {
  return Array.isArray(body?.errors)
    ? body.errors.map((e) => ({ message: e?.message ?? null, code: e?.extensions?.code ?? null }))
    : [];
}

// The recording wrapper around the real fetch (mode "run") or around a
// stand-in that never touches the network (mode "documents": it asks for
// the query text, and answers it with an empty result).
function recordingFetch(target, init = {}) {
  const described = describeRequest(target, init);
  const entry = {
    operation: current.operation,
    run: current.run,
    method: described.method,
    path: described.path,
    hasQuery: described.hasQuery,
    sha256: described.sha256,
    status: null,
    errors: [],
    hasData: false,
    error: null,
  };
  report.requests.push(entry);
  const exchange =
    mode === "documents"
      ? Promise.resolve(standIn(described))
      : httpFetch(target, init);
  return exchange.then(
    async (response) => {
      entry.status = response.status;
      const text = await response.clone().text();
      try {
        const body = JSON.parse(text);
        entry.errors = graphqlErrors(body);
        entry.hasData = body?.data != null;
      } catch {
        entry.body = text.slice(0, 500);
      }
      return response;
    },
    (e) => {
      entry.error = String(e?.message ?? e);
      throw e;
    },
  );
}

function standIn(described) {
  const json = (value) =>
    new Response(JSON.stringify(value), { status: 200, headers: { "content-type": "application/json" } });
  if (!described.hasQuery) {
    return json({
      errors: [{ message: "PersistedQueryNotFound", extensions: { code: "PERSISTED_QUERY_NOT_FOUND" } }],
    });
  }
  // The query text sent with the hash must be the text hashed.
  const hashed = createHash("sha256").update(described.query).digest("hex");
  if (described.sha256 !== hashed) {
    report.mismatch = { sent: described.query, sha256: described.sha256 };
  }
  return json({ data: null });
}

function describeError(error) {
  if (!error) return null;
  return {
    name: error.name ?? null,
    message: String(error.message ?? error),
    errors: Array.isArray(error.errors)
      ? error.errors.map((e) => ({ message: e?.message ?? null, code: e?.extensions?.code ?? null }))
      : [],
  };
}

async function main() {
  const link = new PersistedQueryLink({ sha256, useGETForHashedQueries: true }).concat(
    new HttpLink({ uri: url ?? "http://documents.invalid/graphql", fetch: recordingFetch }),
  );
  const client = new ApolloClient({ cache: new InMemoryCache(), link });
  for (const operation of spec.operations ?? []) {
    const document = gql(operation.query);
    for (let run = 1; run <= repeat; run++) {
      current = { operation: operation.name, run };
      const result = { operation: operation.name, run, data: null, error: null };
      try {
        const answer = await client.query({
          query: document,
          variables: operation.variables ?? {},
          fetchPolicy: "no-cache",
          errorPolicy: "all",
        });
        result.data = answer.data ?? null;
        result.error = describeError(answer.error);
      } catch (e) {
        result.error = describeError(e);
      }
      report.results.push(result);
    }
  }
  client.stop();
}

if (!finished) {
  main().then(
    () => {
      clearTimeout(watchdog);
      finish(0);
    },
    (e) => finish(1, { fatal: String(e?.stack ?? e) }),
  );
}
