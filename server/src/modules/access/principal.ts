import type { AppError } from "../../lib/errors.ts";
import { platformError } from "../../lib/errors.ts";
import type { AccessClaims } from "../keys/signing-keys.ts";
import type { AccessService, OrgMembership } from "./access.service.ts";
import { isPermission, type Permission } from "./permissions.ts";

/**
 * Who is calling, and what each kind of caller may do in an org: the principal model and its narrowing, in one
 * place. The request spine (http/) authenticates and then asks `membershipOfPrincipal`; the token endpoint asks the
 * same question before exchanging a token; every "never more than its maker" check reads the membership it returns.
 */

/**
 * An API key of one org, owned by a user or a service account. `scope` is what the key itself carries: its roles'
 * and listed permissions, or "inherit" (its owner's current permissions); narrowed at each request to what the owner
 * holds now, so a key never exceeds its owner.
 */
export type ApiKeyPrincipal = {
  kind: "api_key";
  keyId: string;
  orgId: string;
  ownerType: "user" | "service_account";
  ownerId: string;
  scope: "inherit" | ReadonlySet<Permission>;
  /** When the key (or this secret of it, rotated out) stops working, ms since the epoch: a token exchanged from it ends by then. */
  expiresAt?: number;
};

/**
 * A user, by an access token. A session's token names its session (`sid`, refused once the session is revoked) and,
 * for a session opened for one org, that org (`orgId`: refused on every other org's routes). A token from the token
 * exchange (RFC 8693) carries a `scope`: bound to its org and narrowed to the scope, never on account routes.
 */
export type UserPrincipal = {
  kind: "user";
  userId: string;
  sessionId?: string;
  tokenId?: string;
  orgId?: string;
  scope?: ReadonlySet<Permission>;
  /** The API key (key_…) an exchanged token came from: it works only while that key does. */
  sourceKeyId?: string;
  /** The OAuth client that asked for this exchanged token (`azp`): it works only while that client does. */
  viaClientId?: string;
  /** Set when someone else acts as this user (an impersonation token, RFC 8693 `act`). */
  impersonation?: Impersonation;
};

/**
 * Who is acting as the user, and under what authority: a platform admin (anywhere the user is) or an owner of the
 * org the token is bound to (never beyond the owner's own permissions there).
 */
export type Impersonation = { id: string; actorId: string; basis: "platform_admin" | "org_owner" };

/**
 * A service account of one org, by an access token (client credentials or token exchange). `scope` narrows the
 * account's permissions as they are at each request; a disabled account, a revoked OAuth client (`clientId`) or a
 * revoked source key ends it.
 */
export type ServiceAccountPrincipal = {
  kind: "service_account";
  serviceAccountId: string;
  orgId: string;
  tokenId?: string;
  scope?: ReadonlySet<Permission>;
  sourceKeyId?: string;
  /** The OAuth client the token was issued to (client credentials), carried into tokens exchanged from it. */
  clientId?: string;
  /** The OAuth client that asked for this exchanged token (`azp`): it works only while that client does. */
  viaClientId?: string;
};

/**
 * A registered service, by a JWT it signed itself with a key of the service key registry (modules/service-keys). It
 * acts with its registration's roles: an org's key in that org only; a platform-wide key (`keyOrgId` null) only in
 * the org its token names in `org`. Never on account routes.
 */
export type ServicePrincipal = {
  kind: "service";
  serviceKeyId: string;
  service: string;
  /** The registration's org; null for a platform-wide registration. */
  keyOrgId: string | null;
  /** The one org it may act in (its key's, or a platform key's `org` claim); undefined: none. */
  orgId: string | undefined;
  roles: readonly string[];
};

/** Who is calling. More kinds (share link, runner) arrive with their issues. */
export type Principal = UserPrincipal | ApiKeyPrincipal | ServiceAccountPrincipal | ServicePrincipal;

/**
 * A person acting as themselves, signed in: not a key, not an exchanged (scoped) token, not an impersonation, not a
 * machine. Only such a caller may act on the person rather than the org (leave an org, change the account).
 */
export function isPersonSelf(p: Principal | undefined): p is UserPrincipal {
  return !!p && p.kind === "user" && p.scope === undefined && p.impersonation === undefined;
}

/** Checks a presented API key: the principal, or the error. Synchronous for a key seen recently (the hot path). */
export interface ApiKeyAuthenticator {
  authenticate(secret: string, ip: string): ApiKeyPrincipal | AppError | Promise<ApiKeyPrincipal | AppError>;
}

/** Checks a JWT whose kid is none of Plinth's signing keys against the service key registry. */
export interface ServiceTokenAuthenticator {
  authenticate(token: string): ServicePrincipal | AppError | Promise<ServicePrincipal | AppError>;
}

/** Whether an impersonation is still live: undefined when it is, the error otherwise. */
export interface ImpersonationChecker {
  check(impersonation: Impersonation): AppError | undefined | Promise<AppError | undefined>;
}

/** Service accounts as members: an account's membership (its roles' permissions), or undefined when disabled or gone. */
export interface ServiceAccountMemberships {
  membership(orgId: string, serviceAccountId: string): Promise<OrgMembership | undefined>;
}

/** The API keys exchanged tokens come from: whether one still works (synchronous for a key this instance knows). */
export interface SourceKeys {
  isLive(orgId: string, keyId: string): boolean | Promise<boolean>;
}

/** OAuth clients: whether one is still live (not revoked, its account enabled); synchronous when cached. */
export interface LiveClients {
  isLive(orgId: string, clientId: string): boolean | Promise<boolean>;
}

/** Registered services as members: what a service key's token may do in an org (undefined: nothing). */
export interface ServiceMemberships {
  membership(principal: ServicePrincipal, orgId: string): OrgMembership | undefined | Promise<OrgMembership | undefined>;
}

/** What the other modules tell the access module about their principals (wired once, at start). */
export interface PrincipalSources {
  serviceAccounts?: ServiceAccountMemberships;
  sourceKeys?: SourceKeys;
  clients?: LiveClients;
  services?: ServiceMemberships;
}

/** Parsed `scope` claims, per verified claims object (the verify cache hands out the same object for a token). */
const scopes = new WeakMap<AccessClaims, ReadonlySet<Permission>>();

/**
 * The principal an access token's claims name: a service account (`sub` sa_…, bound to its `org`), or a user, bound
 * to `org` (a session for one org, or an exchanged token) and narrowed to `scope` when the token carries one. Unknown
 * permissions in `scope` are dropped, never widened into.
 */
export function principalOfClaims(claims: AccessClaims): UserPrincipal | ServiceAccountPrincipal {
  let scope: ReadonlySet<Permission> | undefined;
  if (typeof claims.scope === "string") {
    scope = scopes.get(claims);
    if (!scope) {
      const set = new Set<Permission>();
      for (const p of claims.scope.split(" ")) if (isPermission(p)) set.add(p);
      scopes.set(claims, (scope = set));
    }
  }
  const orgId = typeof claims.org === "string" ? claims.org : undefined;
  // an exchanged API key's id (never a secret): the token dies with the key
  const sourceKeyId = typeof claims.key_id === "string" ? claims.key_id : undefined;
  // the client that asked for an exchange (RFC 8693 with client authentication): the token dies with it
  const viaClientId = typeof claims.azp === "string" ? claims.azp : undefined;
  if (claims.sub.startsWith("sa_")) {
    const clientId = typeof claims.client_id === "string" ? claims.client_id : undefined;
    const sa: ServiceAccountPrincipal = {
      kind: "service_account",
      serviceAccountId: claims.sub,
      orgId: orgId ?? "",
      tokenId: claims.jti,
      scope,
      sourceKeyId,
      clientId,
    };
    if (viaClientId !== undefined) sa.viaClientId = viaClientId;
    return sa;
  }
  const p: UserPrincipal = { kind: "user", userId: claims.sub, sessionId: claims.sid, tokenId: claims.jti };
  if (orgId !== undefined) p.orgId = orgId;
  if (scope) p.scope = scope;
  if (sourceKeyId !== undefined) p.sourceKeyId = sourceKeyId;
  if (viaClientId !== undefined) p.viaClientId = viaClientId;
  if (claims.act !== undefined) p.impersonation = impersonationOf(claims);
  return p;
}

const impersonations = new WeakMap<AccessClaims, Impersonation>();

/**
 * The impersonation an access token's `act` claim names (RFC 8693 §4.1: `act.sub` is the actor; Plinth adds `imp`,
 * the record's id, and `basis`). Only Plinth signs tokens this is read from, so a malformed one is a bug: it is read
 * as an impersonation that no record matches, which the checker refuses.
 */
function impersonationOf(claims: AccessClaims): Impersonation {
  let imp = impersonations.get(claims);
  if (!imp) {
    const act = claims.act as { sub?: unknown; imp?: unknown; basis?: unknown } | null;
    imp = {
      id: typeof act?.imp === "string" ? act.imp : "",
      actorId: typeof act?.sub === "string" ? act.sub : "",
      basis: act?.basis === "org_owner" ? "org_owner" : "platform_admin",
    };
    impersonations.set(claims, imp);
  }
  return imp;
}

/** A signed-in user acting as themselves in any org they belong to: the fast path, one cached lookup. */
export function isPlainUser(p: Principal): p is UserPrincipal {
  return p.kind === "user" && p.orgId === undefined && p.scope === undefined && p.impersonation === undefined;
}

/**
 * What any principal may do in `orgId` (undefined: nothing, answered as 404) — the one resolution of a principal's
 * authority:
 * - a signed-in user: their membership (role, custom role, peer grants, teams); a session opened for one org only
 *   there;
 * - an exchanged user token: that membership narrowed to its scope, in its own org only;
 * - an owner impersonating a member: the member's permissions within the owner's, while the owner still is one;
 * - an API key: its owner's membership now (inherit) or narrowed to the key's permissions;
 * - a service account's token: the account's roles now, narrowed to the scope, in its org only, never while the
 *   account is disabled or the OAuth client it was issued to is revoked;
 * - a token a client obtained by exchange (`azp`): only while that client is not revoked;
 * - a registered service: its key's roles in its one org.
 * A token exchanged from an API key works only while the key does: otherwise 401 INVALID_TOKEN (reason key_revoked).
 */
export async function membershipOfPrincipal(
  access: Pick<AccessService, "membership">,
  sources: PrincipalSources,
  principal: Principal,
  orgId: string,
): Promise<OrgMembership | undefined> {
  if (principal.kind !== "api_key" && principal.kind !== "service" && principal.sourceKeyId !== undefined) {
    // O(1) and no database read for a key this instance saw within its cache lifetime (api-keys.verifier.ts)
    if (!(await (sources.sourceKeys?.isLive(principal.orgId ?? orgId, principal.sourceKeyId) ?? false))) {
      throw platformError("INVALID_TOKEN", "The API key this token was exchanged from no longer works (revoked, expired or gone).", {
        extra: { reason: "key_revoked" },
      });
    }
  }
  if ((principal.kind === "user" || principal.kind === "service_account") && principal.viaClientId !== undefined) {
    await requireLiveClient(sources, principal.orgId ?? orgId, principal.viaClientId, "The OAuth client that obtained this token is revoked.");
  }
  switch (principal.kind) {
    case "api_key":
      return keyMembershipOf(access, sources, principal, orgId);
    case "user": {
      if (principal.orgId !== undefined && principal.orgId !== orgId) return undefined;
      const m = await access.membership(orgId, principal.userId);
      if (m && principal.impersonation?.basis === "org_owner") {
        // an owner acting as a member holds no more than both of them: the member's permissions within the owner's,
        // and nothing once the impersonator is no longer an owner of this org
        const actor = await access.membership(orgId, principal.impersonation.actorId);
        if (actor?.role !== "owner") return undefined;
        const within = narrowed(m, actor.permissions);
        return principal.scope ? narrowed(within, principal.scope) : within;
      }
      return m && principal.scope ? narrowed(m, principal.scope) : m;
    }
    case "service_account": {
      if (principal.orgId !== orgId || !sources.serviceAccounts) return undefined;
      if (principal.clientId !== undefined)
        await requireLiveClient(sources, orgId, principal.clientId, "The OAuth client this token was issued to is revoked.");
      const m = await sources.serviceAccounts.membership(orgId, principal.serviceAccountId);
      return m && principal.scope ? narrowed(m, principal.scope) : m;
    }
    case "service":
      // an org's key acts in its org only; a platform key only in the org its token names
      if (principal.orgId !== orgId || !sources.services) return undefined;
      return sources.services.membership(principal, orgId);
  }
}

/** 401 INVALID_TOKEN (reason client_revoked) unless the OAuth client still works (cached per instance, like keys). */
async function requireLiveClient(sources: PrincipalSources, orgId: string, clientId: string, detail: string): Promise<void> {
  if (!(await (sources.clients?.isLive(orgId, clientId) ?? false))) throw platformError("INVALID_TOKEN", detail, { extra: { reason: "client_revoked" } });
}

/**
 * What an API key may do in an org: nothing outside its own org; an inheriting key acts as its owner now; any other
 * key as its owner narrowed to the key's permissions, on RBAC alone (the owner's teams and shares do not come along).
 * A key whose owner is no longer a member (or disabled), or whose service account is disabled or deleted, is refused.
 */
async function keyMembershipOf(
  access: Pick<AccessService, "membership">,
  sources: PrincipalSources,
  p: ApiKeyPrincipal,
  orgId: string,
): Promise<OrgMembership | undefined> {
  if (p.orgId !== orgId) return undefined;
  const owner = p.ownerType === "user" ? await access.membership(orgId, p.ownerId) : await sources.serviceAccounts?.membership(orgId, p.ownerId);
  if (!owner) return undefined;
  if (p.scope === "inherit") return owner;
  return narrowed(owner, p.scope);
}

/**
 * A membership narrowed to `scope`: only permissions both hold (the role's and the peer-lent ones kept apart), no
 * teams or shares (`permissionsOnly`), and the
 * owner's role name kept for messages only (actsAsRole refuses it). Reused while both the scope and the owner's
 * membership are the cached objects (each is replaced when its facts change), so a warm request allocates nothing.
 */
const narrowedCache = new WeakMap<ReadonlySet<Permission>, WeakMap<OrgMembership, OrgMembership>>();
export function narrowed(owner: OrgMembership, scope: ReadonlySet<Permission>): OrgMembership {
  let byOwner = narrowedCache.get(scope);
  if (!byOwner) narrowedCache.set(scope, (byOwner = new WeakMap()));
  let m = byOwner.get(owner);
  if (!m) {
    const permissions = new Set<Permission>();
    for (const p of scope) if (owner.permissions.has(p)) permissions.add(p);
    // what the owner's role gives stays apart from what peers lent the owner: a narrowed credential can use both,
    // and can pass on (peer grants, new credentials) only what the role gives
    const rolePermissions = new Set<Permission>();
    for (const p of permissions) if (owner.rolePermissions.has(p)) rolePermissions.add(p);
    const peer = owner.peer.filter((g) => permissions.has(g.permission));
    m = {
      orgId: owner.orgId,
      userId: owner.userId,
      role: owner.role,
      permissions,
      rolePermissions,
      peer,
      teams: [],
      teamReach: new Set(),
      permissionsOnly: true,
    };
    byOwner.set(owner, m);
  }
  return m;
}

/** How a 403 names what the caller's authority comes from. */
export function holderOf(principal: Principal, membership: OrgMembership): string {
  return principal.kind === "api_key"
    ? "this API key"
    : principal.kind === "service_account"
      ? "this service account's token"
      : principal.kind === "service"
        ? `the roles of service ${principal.service}'s key`
        : principal.scope
          ? "this token's scope"
          : principal.impersonation
            ? `the impersonated member's role (${membership.role}) within yours`
            : `your role (${membership.role})`;
}

/**
 * `membershipOfPrincipal` with the other modules' sources bound: what the tenant hook, the token endpoint and every
 * "never more than its maker" check ask. The sources arrive once their modules are wired (deps.ts).
 */
export function createPrincipals(access: Pick<AccessService, "membership">) {
  const sources: PrincipalSources = {};
  return {
    sources,
    setSources(s: PrincipalSources): void {
      Object.assign(sources, s);
    },
    membershipOf(principal: Principal, orgId: string): Promise<OrgMembership | undefined> {
      return membershipOfPrincipal(access, sources, principal, orgId);
    },
  };
}
export type Principals = ReturnType<typeof createPrincipals>;
