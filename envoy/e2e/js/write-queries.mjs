// Writes the introspection queries graphql-js's getIntrospectionQuery()
// produces: with its defaults (what most clients send) and with every
// option on but `oneOf` (a draft feature apollo-compiler 1.33 does not
// know: its `__Type.isOneOf` fails validation). Run with node; the outputs
// are committed.
import { writeFileSync } from "node:fs";
import { getIntrospectionQuery } from "graphql";

writeFileSync("introspection-query.graphql", getIntrospectionQuery() + "\n");
writeFileSync(
  "introspection-query-full.graphql",
  getIntrospectionQuery({
    descriptions: true,
    specifiedByUrl: true,
    directiveIsRepeatable: true,
    schemaDescription: true,
    inputValueDeprecation: true,
  }) + "\n",
);
