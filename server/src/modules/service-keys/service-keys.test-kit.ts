import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from "jose";
import { addMember, createTestApp, makeOrg, signUp, uniqueSlug, type Backend, type TestApp, type TestUser } from "../../../test/harness.ts";
import { createManualClock } from "../../lib/clock.ts";

export interface Kit {
  t: TestApp;
  clock: ReturnType<typeof createManualClock>;
  owner: TestUser;
  admin: TestUser;
  dev: TestUser;
  viewer: TestUser;
  /** A platform admin (users.is_platform_admin), member of no org above. */
  root: TestUser;
  orgId: string;
  otherOrgId: string;
  close(): Promise<void>;
}

export async function startKit(backend: Backend, env?: Record<string, string>): Promise<Kit> {
  const clock = createManualClock();
  const t = await createTestApp({ backend, clock, worker: false, env });
  const [owner, admin, dev, viewer, root] = [
    await signUp(t, "Olivia Owner"),
    await signUp(t, "Adam Admin"),
    await signUp(t, "Dana Dev"),
    await signUp(t, "Vic Viewer"),
    await signUp(t, "Rita Root"),
  ];
  const orgId = await makeOrg(t, owner, "Services Inc", uniqueSlug("svk"));
  const otherOrgId = await makeOrg(t, owner, "Other Inc", uniqueSlug("svk"));
  for (const [u, role] of [
    [admin, "admin"],
    [dev, "developer"],
    [viewer, "viewer"],
  ] as const)
    await addMember(t, orgId, u, role);
  await t.db.owner.execute(sql`update users set is_platform_admin = true where id = ${root.id}`);
  return { t, clock, owner, admin, dev, viewer, root, orgId, otherOrgId, close: () => t.close() };
}

export type Alg = "EdDSA" | "ES256" | "ES384" | "RS256" | "PS256";

/** A service's key pair: the public JWK to register, the private key to sign with. */
export interface ServiceKeyPair {
  alg: Alg;
  kid: string;
  jwk: JWK;
  privateJwk: JWK;
  privateKey: CryptoKey;
}

export async function keyPair(alg: Alg = "EdDSA", kid = `kid-${randomBytes(6).toString("hex")}`): Promise<ServiceKeyPair> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, crv: alg === "EdDSA" ? "Ed25519" : undefined });
  return { alg, kid, jwk: await exportJWK(publicKey), privateJwk: await exportJWK(privateKey), privateKey };
}

export const serviceName = (tag = "svc") => `${tag}-${randomBytes(4).toString("hex")}`;

/** The body that registers `k` for `service`. */
export const registration = (service: string, k: ServiceKeyPair, extra: Record<string, unknown> = {}) => ({
  service,
  jwk: k.jwk,
  kid: k.kid,
  alg: k.alg,
  ...extra,
});

export interface TokenOptions {
  iss?: string;
  sub?: string;
  aud?: string | string[];
  /** Seconds since the epoch (default: the clock's now). */
  iat?: number;
  /** Seconds after iat (default 300). */
  ttl?: number;
  kid?: string;
  alg?: string;
  claims?: JWTPayload;
  omit?: ("iat" | "exp" | "iss" | "sub" | "aud")[];
}

/** A token `service` signs itself with `k`, for Plinth's audience unless told otherwise. */
export async function serviceToken(kit: Pick<Kit, "t" | "clock">, service: string, k: ServiceKeyPair, o: TokenOptions = {}): Promise<string> {
  const iat = o.iat ?? Math.floor(kit.clock.now().getTime() / 1000);
  const payload: JWTPayload = {
    iss: o.iss ?? service,
    sub: o.sub ?? service,
    aud: o.aud ?? kit.t.deps.config.jwt.audience,
    iat,
    exp: iat + (o.ttl ?? 300),
    ...o.claims,
  };
  for (const c of o.omit ?? []) delete payload[c];
  return new SignJWT(payload).setProtectedHeader({ alg: o.alg ?? k.alg, kid: o.kid ?? k.kid, typ: "JWT" }).sign(k.privateKey);
}
