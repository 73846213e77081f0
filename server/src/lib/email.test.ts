import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { canonicalEmail, normalizeEmail } from "./email.ts";

const ok = (input: string) => {
  const r = normalizeEmail(input);
  assert.ok(r.ok, `${input}: ${r.ok ? "" : r.reason}`);
  return r.email;
};
const reason = (input: string) => {
  const r = normalizeEmail(input);
  assert.ok(!r.ok, `${input} should be refused, got ${r.ok ? r.email : ""}`);
  return r.reason;
};

describe("normalizeEmail", () => {
  it("makes one canonical form, and the canonical form is its own", () => {
    const cases: [string, string][] = [
      ["  Ada.Lovelace@Example.COM ", "ada.lovelace@example.com"],
      ["ａｄａ@ｅｘａｍｐｌｅ.com", "ada@example.com"],
      ["\ufb01le@example.com", "file@example.com"], // the ﬁ ligature
      ["\u1d2cda@example.com", "ada@example.com"], // a modifier capital: NFKC makes it upper case, then it is lowered
      ["ada@xn--bcher-kva.de", "ada@bücher.de"],
      ["ADA@BÜCHER.DE", "ada@bücher.de"],
      ["Иван@Пример.РФ", "иван@пример.рф"],
      ["山田たろう@例え.jp", "山田たろう@例え.jp"], // Han with Hiragana is how Japanese is written
      ["홍길동@韓國.kr", "홍길동@韓國.kr"],
      ["o'brien+tag@example.co.uk", "o'brien+tag@example.co.uk"],
      ["\ufeffada@example.com\ufeff", "ada@example.com"],
    ];
    for (const [input, want] of cases) {
      assert.equal(ok(input), want, input);
      assert.equal(ok(want), want, `${want} is canonical`);
      assert.equal(canonicalEmail(want), want);
    }
  });

  it("refuses invisible characters, naming the code point", () => {
    for (const c of ["\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\u200e", "\u202e", "\u2066", "\ufe0f", "\u3164", "\u0007", "\ue000"]) {
      const hex = c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
      assert.match(reason(`ad${c}a@example.com`), new RegExp(`U\\+${hex}`));
    }
    assert.match(reason("a\u00a8b@example.com"), /normalised/); // ¨ becomes a space and a combining mark
  });

  it("refuses scripts mixed in the local part or in one domain label", () => {
    assert.match(reason("\u0430da@example.com"), /Cyrillic and Latin letters before the @/);
    assert.match(reason("b\u03bfb@example.com"), /Latin and Greek/);
    assert.match(reason("ada@ex\u0430mple.com"), /domain part "ex\u0430mple"/);
    assert.match(reason("ada@xn--pple-43d.com"), /Cyrillic and Latin/); // "аpple" spelt in punycode
    assert.equal(ok("иван@example.com"), "иван@example.com", "each part in its own script is fine");
  });

  it("refuses what normalisation turns into a second @ or an empty label", () => {
    assert.match(reason("a\ufe6bb@example.com"), /exactly one @/); // ﹫
    assert.match(reason("ada@example..com"), /empty part/);
    assert.match(reason("ada@localhost"), /dot/);
    assert.match(reason(`${"a".repeat(65)}@example.com`), /64/);
  });
});
