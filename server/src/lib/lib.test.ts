import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { deriveKey, open, randomToken, seal, sha256 } from "./crypto.ts";
import { idPattern, isId, newId } from "./ids.ts";

describe("ids", () => {
  it("are prefixed, 26 base32 characters, and sort by creation time", () => {
    const a = newId("user", 1_700_000_000_000);
    const b = newId("user", 1_700_000_000_001);
    assert.match(a, new RegExp(idPattern("user")));
    assert.ok(a < b);
    assert.ok(isId("user", a));
    assert.equal(isId("org", a), false);
    assert.notEqual(newId("user", 5), newId("user", 5), "random part differs within one millisecond");
  });
});

describe("sealing", () => {
  const key = deriveKey(randomBytes(32), "test");
  it("round-trips and binds the ciphertext to its record", () => {
    const sealed = seal(key, "private jwk", "signing_key:sig_1");
    assert.equal(open(key, sealed, "signing_key:sig_1").toString(), "private jwk");
    assert.ok(!sealed.includes("private"));
    assert.throws(() => open(key, sealed, "signing_key:sig_2"), "another record's AAD fails");
    assert.throws(() => open(deriveKey(randomBytes(32), "test"), sealed, "signing_key:sig_1"), "another key fails");
    const tampered = Buffer.from(sealed, "base64url");
    tampered[tampered.length - 1] ^= 1;
    assert.throws(() => open(key, tampered.toString("base64url"), "signing_key:sig_1"));
  });

  it("derives different keys for different purposes", () => {
    const master = randomBytes(32);
    assert.notDeepEqual(deriveKey(master, "a"), deriveKey(master, "b"));
    assert.deepEqual(deriveKey(master, "a"), deriveKey(master, "a"));
  });

  it("makes unguessable tokens and stable hashes", () => {
    assert.equal(Buffer.from(randomToken(), "base64url").length, 32);
    assert.notEqual(randomToken(), randomToken());
    assert.equal(sha256("x"), sha256("x"));
  });
});
