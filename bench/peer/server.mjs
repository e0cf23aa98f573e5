// better-auth with its multiSession plugin, served by node:http: the peer of bench/peer.py.
//
//   node server.mjs --port P --sqlite PATH | --postgres URL  [--migrate]
//
// With --migrate it creates better-auth's tables and two email/password accounts, then exits.
// Otherwise it serves /api/auth/* (sign-in, multi-session/set-active, get-session) and /ready.
// The secret is fixed so that the harness can check cookies; rate limiting is off (the
// harness signs in hundreds of browsers from one address) and telemetry is off.
import http from "node:http";
import { betterAuth } from "better-auth";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";
import { multiSession } from "better-auth/plugins";

const args = Object.fromEntries(
  process.argv.slice(2).map((a, i, all) => (a.startsWith("--") ? [a.slice(2), all[i + 1] ?? true] : null)).filter(Boolean),
);
const port = Number(args.port ?? 0);

let database;
if (args.sqlite) {
  const { default: Database } = await import("better-sqlite3");
  database = new Database(args.sqlite);
  database.pragma("journal_mode = WAL");
} else if (args.postgres) {
  const { default: pg } = await import("pg");
  database = new pg.Pool({ connectionString: args.postgres, max: 10 });
} else {
  throw new Error("--sqlite PATH or --postgres URL");
}

const baseURL = `http://127.0.0.1:${port}`;
const auth = betterAuth({
  database,
  baseURL,
  secret: process.env.BENCH_PEER_SECRET,
  emailAndPassword: { enabled: true },
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
  plugins: [multiSession()],
});

if (args.migrate) {
  const { runMigrations } = await getMigrations(auth.options);
  await runMigrations();
  for (const name of ["alice", "bob"]) {
    await auth.api.signUpEmail({
      body: { email: `${name}@example.com`, password: `${name}-peer-password`, name },
    });
  }
  if (database.end) await database.end();
  else database.close();
  process.exit(0);
}

const handler = toNodeHandler(auth);
http
  .createServer((req, res) => {
    if (req.url === "/ready") {
      res.end("ok");
      return;
    }
    handler(req, res);
  })
  .listen(port, "127.0.0.1", () => console.log(`better-auth on ${baseURL}`));
