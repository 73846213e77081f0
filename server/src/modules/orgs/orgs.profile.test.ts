import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import {
  BACKENDS,
  createTestApp,
  GOOD_PASSWORD,
  problemOf,
  signUp,
  uniqueEmail,
  uniqueSlug,
  type TestApp,
  type TestUser,
  assertFieldError,
} from "../../../test/harness.ts";

for (const backend of BACKENDS) {
  describe(`organization profile (${backend})`, () => {
    let t: TestApp;
    let alice: TestUser;
    let bob: TestUser;
    before(async () => {
      t = await createTestApp({ backend, worker: false });
      alice = await signUp(t, "Alice");
      bob = await signUp(t, "Bob");
    });
    after(() => t.close());

    const createOrg = async (user: TestUser, body: Record<string, unknown>) => t.call("POST", "/v1/orgs", body, user.access_token);
    const newOrg = async (user: TestUser = alice) => {
      const res = await createOrg(user, { name: "Acme", slug: uniqueSlug() });
      assert.equal(res.statusCode, 201, res.body);
      return res.json() as Record<string, unknown> & { id: string; slug: string };
    };
    const events = (orgId: string) => t.deps.audit.list(orgId, {}, 1000);
    const myOrgs = async (user: TestUser) =>
      (await t.call("GET", "/v1/orgs", undefined, user.access_token)).json().items as { id: string; slug: string; role: string }[];

    it("POST /v1/orgs creates an org owned by its creator, listed in GET /v1/orgs and audited", async () => {
      const slug = uniqueSlug("acme");
      const res = await createOrg(alice, { name: "  Acme Corp  ", slug });
      assert.equal(res.statusCode, 201, res.body);
      const org = res.json();
      assert.match(org.id, /^org_[0-9a-z]{26}$/);
      assert.equal(org.name, "Acme Corp", "the name is trimmed");
      assert.equal(org.slug, slug);
      assert.equal(org.personal, false);
      for (const f of ["display_name", "logo_url", "primary_color", "address", "contact_email", "contact_phone", "deleted_at"]) assert.equal(org[f], null, f);
      const listed = (await myOrgs(alice)).find((o) => o.id === org.id);
      assert.equal(listed?.role, "owner");
      assert.equal(listed?.slug, slug);
      assert.ok(!(await myOrgs(bob)).some((o) => o.id === org.id), "nobody else sees it");
      const got = await t.call("GET", `/v1/orgs/${org.id}`, undefined, alice.access_token);
      assert.equal(got.statusCode, 200, got.body);
      assert.deepEqual(got.json(), org);
      const [created, ...rest] = await events(org.id);
      assert.equal(rest.length, 0);
      assert.equal(created.action, "org.created");
      assert.equal(created.actorId, alice.id);
      assert.deepEqual(created.diff, { name: [null, "Acme Corp"], slug: [null, slug] });
    });

    const badCreate: [string, Record<string, unknown>, string][] = [
      ["an empty name", { name: "" }, "name"],
      ["a blank name", { name: "   " }, "name"],
      ["a 101-character name", { name: "n".repeat(101) }, "name"],
      ["a missing name", { name: undefined }, "name"],
      ["slug 'Bad Slug'", { slug: "Bad Slug" }, "slug"],
      ["slug '-x-'", { slug: "-x-" }, "slug"],
      ["a 2-character slug", { slug: "ab" }, "slug"],
      ["a 49-character slug", { slug: "s".repeat(49) }, "slug"],
      ["a missing slug", { slug: undefined }, "slug"],
      ["an unknown field", { personal: true }, "personal"],
    ];
    for (const [label, patch, field] of badCreate) {
      it(`POST /v1/orgs refuses ${label} with 400 naming ${field}, creating nothing`, async () => {
        const beforeCount = (await myOrgs(alice)).length;
        const body: Record<string, unknown> = { name: "Valid", slug: uniqueSlug(), ...patch };
        for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
        assertFieldError(await createOrg(alice, body), field);
        assert.equal((await myOrgs(alice)).length, beforeCount);
      });
    }

    it("accepts the slug bounds: 3 and 48 characters, inner hyphens", async () => {
      for (const slug of [`${randomBytes(1).toString("hex")}a`, `a-${randomBytes(23).toString("hex")}`]) {
        const res = await createOrg(alice, { name: "Bounds", slug: slug.slice(0, 48) });
        assert.equal(res.statusCode, 201, `${slug}: ${res.body}`);
      }
    });

    it("a taken slug answers 409 SLUG_TAKEN naming slug, even when another user's org holds it", async () => {
      const mine = await newOrg(alice);
      const again = await createOrg(alice, { name: "Again", slug: mine.slug });
      assert.equal(again.statusCode, 409, again.body);
      assert.equal(problemOf(again).code, "SLUG_TAKEN");
      assert.equal(problemOf(again).field, "slug");
      // Bob cannot see Alice's org (row-level security), yet the conflict must not be hidden from him
      const theirs = await createOrg(bob, { name: "Theirs", slug: mine.slug });
      assert.equal(theirs.statusCode, 409, theirs.body);
      assert.equal(problemOf(theirs).field, "slug");
      const bobsPersonal = (await myOrgs(bob))[0];
      const personal = await createOrg(alice, { name: "Copy", slug: bobsPersonal.slug });
      assert.equal(personal.statusCode, 409, "personal org slugs are taken too");
      const patch = await t.call("PATCH", `/v1/orgs/${mine.id}`, { slug: bobsPersonal.slug }, alice.access_token);
      assert.equal(patch.statusCode, 409, patch.body);
      assert.equal(problemOf(patch).code, "SLUG_TAKEN");
      assert.equal(problemOf(patch).field, "slug");
      assert.equal((await t.call("GET", `/v1/orgs/${mine.id}`, undefined, alice.access_token)).json().slug, mine.slug);
      assert.equal((await events(mine.id)).length, 1, "a refused change is not audited");
    });

    it("two concurrent creations with one slug: one 201, one 409", async () => {
      const slug = uniqueSlug("race");
      const codes = (await Promise.all([createOrg(alice, { name: "A", slug }), createOrg(bob, { name: "B", slug })])).map((r) => r.statusCode);
      assert.deepEqual(codes.sort(), [201, 409]);
    });

    const edits: [string, unknown][] = [
      ["name", "Renamed Inc"],
      ["slug", uniqueSlug("renamed")],
      ["display_name", "Renamed™"],
      ["logo_url", "https://cdn.example.com/logo.png"],
      ["primary_color", "#1a2B3c"],
      ["address", { line1: "1 Main St", line2: "Floor 2", city: "Berlin", region: "BE", postal_code: "10115", country: "DE" }],
      ["contact_email", "billing@example.com"],
      ["contact_phone", "+49 (30) 123-4567"],
    ];
    for (const [field, value] of edits) {
      it(`PATCH changes ${field}, audits it, and (if nullable) clears it with null`, async () => {
        const org = await newOrg();
        const res = await t.call("PATCH", `/v1/orgs/${org.id}`, { [field]: value }, alice.access_token);
        assert.equal(res.statusCode, 200, res.body);
        const changed = res.json();
        assert.deepEqual(changed[field], value);
        assert.deepEqual({ ...changed, [field]: org[field], updated_at: org.updated_at }, org, "nothing else changed");
        assert.ok(changed.updated_at >= (org.updated_at as string));
        assert.deepEqual((await t.call("GET", `/v1/orgs/${org.id}`, undefined, alice.access_token)).json(), changed);
        let [last] = await events(org.id);
        assert.equal(last.action, "org.updated");
        assert.deepEqual(last.diff, { [field]: [org[field], value] });
        if (field === "name" || field === "slug") {
          assertFieldError(await t.call("PATCH", `/v1/orgs/${org.id}`, { [field]: null }, alice.access_token), field);
          return;
        }
        const cleared = await t.call("PATCH", `/v1/orgs/${org.id}`, { [field]: null }, alice.access_token);
        assert.equal(cleared.statusCode, 200, cleared.body);
        assert.equal(cleared.json()[field], null);
        [last] = await events(org.id);
        assert.deepEqual(last.diff, { [field]: [value, null] });
      });
    }

    it("PATCH changes several fields at once in one audit event", async () => {
      const org = await newOrg();
      const res = await t.call(
        "PATCH",
        `/v1/orgs/${org.id}`,
        { display_name: "Shiny", primary_color: "#000000", contact_email: "a@example.com" },
        alice.access_token,
      );
      assert.equal(res.statusCode, 200, res.body);
      const all = await events(org.id);
      assert.equal(all.length, 2);
      assert.deepEqual(all[0].diff, { display_name: [null, "Shiny"], primary_color: [null, "#000000"], contact_email: [null, "a@example.com"] });
    });

    const badEdits: [string, Record<string, unknown>, string][] = [
      ["an empty name", { name: "" }, "name"],
      ["a blank name", { name: "  " }, "name"],
      ["a 101-character name", { name: "x".repeat(101) }, "name"],
      ["slug 'Bad Slug'", { slug: "Bad Slug" }, "slug"],
      ["slug '-x-'", { slug: "-x-" }, "slug"],
      ["an empty display_name", { display_name: "" }, "display_name"],
      ["an http logo_url", { logo_url: "http://cdn.example.com/logo.png" }, "logo_url"],
      ["a logo_url that is no URL", { logo_url: "logo.png" }, "logo_url"],
      ["a javascript: logo_url", { logo_url: "javascript:alert(1)" }, "logo_url"],
      ["primary_color 'red'", { primary_color: "red" }, "primary_color"],
      ["primary_color '#12345'", { primary_color: "#12345" }, "primary_color"],
      ["primary_color '#1234567'", { primary_color: "#1234567" }, "primary_color"],
      ["a lower-case country", { address: { country: "de" } }, "address.country"],
      ["a three-letter country", { address: { country: "DEU" } }, "address.country"],
      ["an unknown address field", { address: { planet: "Mars" } }, "address.planet"],
      ["an address that is a string", { address: "1 Main St, Berlin" }, "address"],
      ["a contact_email that is no email", { contact_email: "billing" }, "contact_email"],
      ["a contact_phone with letters", { contact_phone: "call me maybe" }, "contact_phone"],
      ["a number for display_name", { display_name: 42 }, "display_name"],
      ["an unknown field", { personal: true }, "personal"],
      ["one bad field among good ones", { display_name: "Fine", primary_color: "blue" }, "primary_color"],
    ];
    for (const [label, body, field] of badEdits) {
      it(`PATCH refuses ${label} with 400 naming ${field}, changing nothing`, async () => {
        const org = await newOrg();
        assertFieldError(await t.call("PATCH", `/v1/orgs/${org.id}`, body, alice.access_token), field);
        assert.deepEqual((await t.call("GET", `/v1/orgs/${org.id}`, undefined, alice.access_token)).json(), org);
        assert.equal((await events(org.id)).length, 1, "no audit event");
      });
    }

    it("PATCH {} is refused with 400", async () => {
      const org = await newOrg();
      const res = await t.call("PATCH", `/v1/orgs/${org.id}`, {}, alice.access_token);
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(problemOf(res).code, "VALIDATION_FAILED");
      assert.equal((await events(org.id)).length, 1);
    });

    it("a PATCH that changes nothing answers 200 and writes no audit event", async () => {
      const org = await newOrg();
      const address = { line1: "1 Main St", city: "Berlin", country: "DE" };
      const set = await t.call("PATCH", `/v1/orgs/${org.id}`, { display_name: "Same", address }, alice.access_token);
      assert.equal(set.statusCode, 200, set.body);
      assert.equal((await events(org.id)).length, 2);
      const same: Record<string, unknown>[] = [
        { name: org.name },
        { name: `  ${org.name as string} ` },
        { slug: org.slug, display_name: "Same" },
        { address },
        { address: { country: "DE", city: "Berlin", line1: "1 Main St" } },
        { logo_url: null, contact_email: null },
      ];
      for (const body of same) {
        const res = await t.call("PATCH", `/v1/orgs/${org.id}`, body, alice.access_token);
        assert.equal(res.statusCode, 200, res.body);
        assert.deepEqual(res.json(), set.json(), JSON.stringify(body));
        assert.equal((await events(org.id)).length, 2, `no event for ${JSON.stringify(body)}`);
      }
    });

    it("a personal org made at registration has an org.created event from the registering request", async () => {
      const email = uniqueEmail();
      const headers = { "x-request-id": `reg-${randomBytes(4).toString("hex")}`, "user-agent": "profile-test/1.0" };
      const reg = await t.call("POST", "/v1/auth/register", { email, password: GOOD_PASSWORD, name: "Carol" }, undefined, headers);
      assert.equal(reg.statusCode, 201, reg.body);
      const login = await t.call("POST", "/v1/auth/login", { email, password: GOOD_PASSWORD });
      const [personal] = (await t.call("GET", "/v1/orgs", undefined, login.json().access_token)).json().items;
      assert.equal(personal.personal, true);
      const all = await events(personal.id);
      assert.equal(all.length, 1);
      const [e] = all;
      assert.equal(e.action, "org.created");
      assert.equal(e.seq, 1);
      assert.deepEqual([e.actorType, e.actorId, e.targetType, e.targetId], ["user", reg.json().id, "org", personal.id]);
      assert.deepEqual([e.requestId, e.userAgent, e.ip], [headers["x-request-id"], "profile-test/1.0", "127.0.0.1"]);
      assert.deepEqual(e.diff, { name: [null, personal.name], slug: [null, personal.slug], personal: [null, true] });
      assert.deepEqual(await t.deps.audit.verify(personal.id), { ok: true, events: 1 });
    });
  });
}
