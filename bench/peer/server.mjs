// The peer: a Node GraphQL server (Apollo Server 5, standalone) resolving
// the demo schema against the same mock functions, with dataloader batching
// User.orders into one /user-orders-batch call per request, as a careful
// team would write it. Used by `make bench` only.
//
//   FUNCTIONS=http://127.0.0.1:8081/function PORT=4000 node server.mjs
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import DataLoader from "dataloader";

const FUNCTIONS = process.env.FUNCTIONS ?? "http://127.0.0.1:8081/function";
const PORT = Number(process.env.PORT ?? 4000);

const typeDefs = `#graphql
  type Query {
    user(id: ID!): User
    users: [User]
    inventory(sku: String!): Inventory
  }
  type User { id: ID! name: String email: String orders: [Order] }
  type Order { id: ID! amount: Float itemCount: Int }
  type Inventory { sku: String! inStock: Boolean quantity: Int }
`;

async function call(path) {
  const response = await fetch(`${FUNCTIONS}${path}`, { headers: { accept: "application/json" } });
  if (!response.ok) throw new Error(`function answered HTTP ${response.status}`);
  return response.json();
}

const resolvers = {
  Query: {
    user: (_, { id }) => call(`/user-profile?id=${encodeURIComponent(id)}`),
    users: () => call("/users"),
    inventory: (_, { sku }) => call(`/inventory?sku=${encodeURIComponent(sku)}`),
  },
  User: {
    orders: (user, _, { orders }) => orders.load(user.id),
  },
};

const server = new ApolloServer({ typeDefs, resolvers });
const { url } = await startStandaloneServer(server, {
  listen: { port: PORT, host: "127.0.0.1" },
  context: async () => ({
    orders: new DataLoader(async (ids) => {
      const byId = await call(`/user-orders-batch?ids=${ids.map(encodeURIComponent).join(",")}`);
      return ids.map((id) => byId[id] ?? null);
    }),
  }),
});
console.log(`listening on ${url}`);
