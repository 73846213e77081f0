import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { CONFIG_VARIABLES, ConfigError, loadConfig } from "./config.ts";

const KEY = Buffer.alloc(32, 7).toString("base64");

describe("configuration", () => {
  it("has working defaults for the embedded mode", () => {
    const c = loadConfig({}, "/srv/plinth");
    assert.equal(c.port, 8080);
    assert.equal(c.publicUrl, "http://localhost:8080");
    assert.deepEqual(c.database, { kind: "embedded", dir: "/srv/plinth/.plinth/pgdata" });
    assert.equal(c.redis.kind, "absent");
    assert.equal(c.mail.kind, "outbox");
    assert.equal(c.jwt.accessTtlSeconds, 900);
    assert.equal(c.jwt.alg, "ES256", "the alg the widest set of verifiers accepts");
    assert.equal(loadConfig({ PLINTH_JWT_ALG: "EdDSA" }, "/srv/plinth").jwt.alg, "EdDSA", "EdDSA stays an option");
  });

  it("reads PostgreSQL, Redis and SMTP settings", () => {
    const c = loadConfig({
      DATABASE_URL: "postgres://owner:pw@db:5432/plinth",
      PLINTH_MASTER_KEY: KEY,
      REDIS_URL: "redis://cache:6379",
      SMTP_URL: "smtp://u:p@mail:587",
      PORT: "9000",
      PLINTH_PUBLIC_URL: "https://plinth.example.com/",
    });
    assert.equal(c.database.kind, "postgres");
    assert.equal(c.redis.kind, "configured");
    assert.equal(c.mail.kind, "smtp");
    assert.equal(c.publicUrl, "https://plinth.example.com");
    assert.equal(c.jwt.issuer, "https://plinth.example.com");
  });

  const bad: [string, Record<string, string>][] = [
    ["PORT", { PORT: "abc" }],
    ["PORT", { PORT: "70000" }],
    ["DATABASE_URL", { DATABASE_URL: "mysql://x/y", PLINTH_MASTER_KEY: KEY }],
    ["PLINTH_MASTER_KEY", { DATABASE_URL: "postgres://x/y" }],
    ["PLINTH_MASTER_KEY", { PLINTH_MASTER_KEY: "c2hvcnQ=" }],
    ["DATABASE_APP_URL", { DATABASE_APP_URL: "postgres://a/b" }],
    ["REDIS_URL", { REDIS_URL: "http://cache" }],
    ["SMTP_URL", { SMTP_URL: "not a url" }],
    ["PLINTH_JWT_ALG", { PLINTH_JWT_ALG: "HS256" }],
    ["PLINTH_ACCESS_TOKEN_TTL", { PLINTH_ACCESS_TOKEN_TTL: "5" }],
    ["LOG_LEVEL", { LOG_LEVEL: "loud" }],
    ["LOG_FORMAT", { LOG_FORMAT: "colourful" }],
    ["TRUST_PROXY", { TRUST_PROXY: "maybe" }],
    ["PLINTH_OUTBOUND_ALLOW", { PLINTH_OUTBOUND_ALLOW: "10.0.0.0/99" }],
    ["PLINTH_OUTBOUND_ALLOW", { PLINTH_OUTBOUND_ALLOW: "127.0.0.1,http://x/" }],
    ["PLINTH_PUBLIC_URL", { PLINTH_PUBLIC_URL: "ftp://x" }],
    ["MAIL_FROM", { MAIL_FROM: "nobody" }],
  ];
  for (const [variable, env] of bad) {
    it(`stops on a bad ${variable} (${JSON.stringify(env)}) naming the variable`, () => {
      assert.throws(
        () => loadConfig(env),
        (e: unknown) => e instanceof ConfigError && e.variable === variable && e.message.startsWith(`${variable}: `),
      );
    });
  }

  it("documents every variable in the README's configuration table", () => {
    const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
    for (const [name, def] of CONFIG_VARIABLES) {
      assert.ok(readme.includes(`| \`${name}\` |`), `README lacks ${name}`);
      assert.ok(def.length > 0);
    }
  });
});
