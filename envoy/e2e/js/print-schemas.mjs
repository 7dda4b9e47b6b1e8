// Prints two schemas the same way, for envoy-e2e to compare:
//   expected: the configured SDL as graphql-js builds it (the filter's
//             @http/@discriminator applications are dropped by printSchema),
//   actual:   the schema the filter's introspection answer describes
//             (graphql-js's buildClientSchema, as GraphiQL and codegen use).
// Input on stdin: {"sdl": "...", "introspection": {"data": {...}}}.
// Output on stdout: {"expected": "...", "actual": "..."}.
import { buildClientSchema, buildSchema, printSchema } from "graphql";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const expected = printSchema(buildSchema(input.sdl, { assumeValidSDL: true }));
const actual = printSchema(buildClientSchema(input.introspection.data));
process.stdout.write(JSON.stringify({ expected, actual }));
