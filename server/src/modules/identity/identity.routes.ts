import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "typebox";
import { actorOf, requestMeta, requirePerson, requireUser } from "../access/request.ts";
import { BODY_ERRORS, bearerSecurity, errors } from "../../http/schemas.ts";
import { idPattern } from "../../lib/ids.ts";
import type { AccountsService } from "./accounts.service.ts";
import { Page, PageQuery, idCursor, page, pageRequest } from "../../lib/pagination.ts";
import type { EmailFlowsService } from "./email-flows.service.ts";
import {
  Accepted,
  ChangePasswordBody,
  EmailBody,
  LoginAttempt,
  LoginBody,
  ProfilePatchBody,
  RefreshBody,
  RegisterBody,
  ResetConfirmBody,
  TokenBody,
  TokenPair,
  toUser,
  User,
} from "./identity.schemas.ts";
import type { IdentityService } from "./identity.service.ts";
import type { SessionsService } from "./sessions.service.ts";

const tags = ["auth"];
const open = { auth: "none" as const };
const accepted = (detail: string) => ({ status: "accepted" as const, detail });

/** Sign-up, sign-in, sessions and the emailed flows: /v1/auth/*. */
export function authRoutes(s: { identity: IdentityService; sessions: SessionsService; email: EmailFlowsService }): FastifyPluginAsyncTypebox {
  return async (app) => {
    app.post(
      "/v1/auth/register",
      {
        config: open,
        schema: {
          operationId: "register",
          tags,
          summary: "Create an account",
          description: "Creates the user and their personal organization (as owner), and mails a verification link. Throttled per IP and per email.",
          body: RegisterBody,
          response: { 201: Type.Ref("User"), ...errors(...BODY_ERRORS, 409, 429) },
        },
      },
      async (req, reply) => reply.code(201).send(toUser(await s.identity.register(req.body, requestMeta(req)))),
    );

    app.post(
      "/v1/auth/login",
      {
        config: open,
        schema: {
          operationId: "login",
          tags,
          summary: "Sign in with email and password",
          description:
            "Returns an access JWT and a refresh token. Unknown email and wrong password answer alike. Failed attempts are throttled per account and IP with growing delays.",
          body: LoginBody,
          response: { 200: Type.Ref("TokenPair"), ...errors(...BODY_ERRORS, 401, 403, 429) },
        },
      },
      async (req) => s.identity.login(req.body, requestMeta(req)),
    );

    app.post(
      "/v1/auth/refresh",
      {
        config: open,
        schema: {
          operationId: "refreshTokens",
          tags,
          summary: "Rotate a refresh token",
          description:
            "Spends the refresh token and returns a new pair. Presenting a spent token revokes its whole session and is recorded as a security event.",
          body: RefreshBody,
          response: { 200: Type.Ref("TokenPair"), ...errors(...BODY_ERRORS, 401) },
        },
      },
      async (req) => s.sessions.refresh(req.body.refresh_token, requestMeta(req)),
    );

    app.post(
      "/v1/auth/logout",
      {
        config: open,
        schema: {
          operationId: "logout",
          tags,
          summary: "End the session of a refresh token",
          description: "Revokes the session (refresh-token family). Idempotent: an unknown token also answers 204.",
          body: RefreshBody,
          response: { 204: Type.Null({ description: "Signed out" }), ...errors(...BODY_ERRORS) },
        },
      },
      async (req, reply) => {
        await s.sessions.logout(req.body.refresh_token);
        return reply.code(204).send(null);
      },
    );

    app.post(
      "/v1/auth/logout-all",
      {
        schema: {
          operationId: "logoutAll",
          tags,
          summary: "End every session of the signed-in user",
          security: bearerSecurity,
          response: { 200: Type.Object({ revoked_sessions: Type.Integer({ description: "How many sessions ended" }) }), ...errors(401) },
        },
      },
      async (req) => ({ revoked_sessions: await s.sessions.logoutAll(requireUser(req).userId, requestMeta(req)) }),
    );

    app.post(
      "/v1/auth/verify-email",
      {
        config: open,
        schema: {
          operationId: "verifyEmail",
          tags,
          summary: "Confirm an email address with the emailed token",
          body: TokenBody,
          response: { 204: Type.Null({ description: "Verified" }), ...errors(...BODY_ERRORS) },
        },
      },
      async (req, reply) => {
        await s.email.verifyEmail(req.body.token);
        return reply.code(204).send(null);
      },
    );

    app.post(
      "/v1/auth/verify-email/resend",
      {
        schema: {
          operationId: "resendVerificationEmail",
          tags,
          summary: "Send the verification mail again",
          security: bearerSecurity,
          response: { 202: Accepted, ...errors(401, 409, 429) },
        },
      },
      async (req, reply) => {
        await s.email.resendVerification(requireUser(req).userId, requestMeta(req));
        return reply.code(202).send(accepted("A new verification link is on its way; older links no longer work."));
      },
    );

    app.post(
      "/v1/auth/password-reset",
      {
        config: open,
        schema: {
          operationId: "requestPasswordReset",
          tags,
          summary: "Mail a password-reset link",
          description: "Always answers 202, whether or not the address has an account. The link expires in 1 hour.",
          body: EmailBody,
          response: { 202: Accepted, ...errors(...BODY_ERRORS, 429) },
        },
      },
      async (req, reply) => {
        await s.email.requestPasswordReset(req.body.email, requestMeta(req));
        return reply.code(202).send(accepted("If the address has an account, a reset link is on its way."));
      },
    );

    app.post(
      "/v1/auth/password-reset/confirm",
      {
        config: open,
        schema: {
          operationId: "confirmPasswordReset",
          tags,
          summary: "Set a new password with the emailed token",
          description: "Spends the token and revokes every session of the account.",
          body: ResetConfirmBody,
          response: { 204: Type.Null({ description: "Password changed" }), ...errors(...BODY_ERRORS) },
        },
      },
      async (req, reply) => {
        await s.email.confirmPasswordReset(req.body, requestMeta(req));
        return reply.code(204).send(null);
      },
    );

    app.post(
      "/v1/auth/magic-link",
      {
        config: open,
        schema: {
          operationId: "requestMagicLink",
          tags,
          summary: "Mail a sign-in link",
          description: "Always answers 202. The link signs in once and expires in 15 minutes.",
          body: EmailBody,
          response: { 202: Accepted, ...errors(...BODY_ERRORS, 429) },
        },
      },
      async (req, reply) => {
        await s.email.requestMagicLink(req.body.email, requestMeta(req));
        return reply.code(202).send(accepted("If the address has an account, a sign-in link is on its way."));
      },
    );

    app.post(
      "/v1/auth/magic-link/verify",
      {
        config: open,
        schema: {
          operationId: "signInWithMagicLink",
          tags,
          summary: "Sign in with the emailed magic-link token",
          body: TokenBody,
          response: { 200: Type.Ref("TokenPair"), ...errors(...BODY_ERRORS) },
        },
      },
      async (req) => s.email.consumeMagicLink(req.body.token, requestMeta(req)),
    );
  };
}

/** The signed-in user's own account: /v1/me*. */
export function meRoutes(s: { identity: IdentityService }): FastifyPluginAsyncTypebox {
  const tags = ["me"];
  return async (app) => {
    app.get(
      "/v1/me",
      {
        schema: {
          operationId: "getMe",
          tags,
          summary: "The signed-in user",
          security: bearerSecurity,
          response: { 200: Type.Ref("User"), ...errors(401, 404) },
        },
      },
      async (req) => toUser(await s.identity.getMe(requireUser(req).userId)),
    );

    app.patch(
      "/v1/me",
      {
        schema: {
          operationId: "updateMe",
          tags,
          summary: "Change name, avatar, locale or time zone",
          security: bearerSecurity,
          body: ProfilePatchBody,
          response: { 200: Type.Ref("User"), ...errors(...BODY_ERRORS, 401, 404) },
        },
      },
      async (req) => toUser(await s.identity.updateMe(requireUser(req).userId, req.body)),
    );

    app.post(
      "/v1/me/password",
      {
        schema: {
          operationId: "changePassword",
          tags,
          summary: "Change the password",
          description: "Needs the current password. Every other session is signed out; this one stays.",
          security: bearerSecurity,
          body: ChangePasswordBody,
          response: { 200: Type.Object({ revoked_sessions: Type.Integer({ description: "Other sessions signed out" }) }), ...errors(...BODY_ERRORS, 401, 429) },
        },
      },
      async (req) => {
        const p = requireUser(req);
        return s.identity.changePassword(p.userId, p.sessionId, req.body, requestMeta(req));
      },
    );

    app.get(
      "/v1/me/logins",
      {
        schema: {
          operationId: "listMyLogins",
          tags,
          summary: "My sign-in history, newest first",
          security: bearerSecurity,
          querystring: PageQuery,
          response: {
            200: Page(LoginAttempt),
            ...errors(400, 401),
          },
        },
      },
      async (req) => {
        const { limit, fetch, cursor } = pageRequest(req.query, idCursor("loginAttempt"));
        const rows = await s.identity.listLogins(requireUser(req).userId, fetch, cursor);
        return page(
          rows,
          limit,
          (r) => r.id,
          (r) => ({ id: r.id, method: r.method, result: r.result, ip: r.ip, user_agent: r.userAgent, created_at: r.createdAt.toISOString() }),
        );
      },
    );
  };
}

const UserParams = Type.Object(
  { userId: Type.String({ pattern: idPattern("user"), description: "usr_… id of the account" }) },
  { additionalProperties: false },
);
const Account = Type.Object({
  id: Type.String({ description: "usr_… id" }),
  email: Type.String({ description: "Email address, canonical form" }),
  disabled: Type.Boolean({ description: "Whether the account is disabled" }),
  disabled_at: Type.Union([Type.String({ format: "date-time" }), Type.Null()], { description: "When it was disabled" }),
  revoked_sessions: Type.Integer({ description: "Sessions this call revoked (0 unless it disabled the account)" }),
});

/** Platform admins' account management: /v1/users/{userId}/$disable and $enable. */
export function accountRoutes(s: { accounts: AccountsService }): FastifyPluginAsyncTypebox {
  const tags = ["platform"];
  const view = (r: { user: { id: string; email: string; disabledAt: Date | null }; revokedSessions: number }) => ({
    id: r.user.id,
    email: r.user.email,
    disabled: r.user.disabledAt !== null,
    disabled_at: r.user.disabledAt?.toISOString() ?? null,
    revoked_sessions: r.revokedSessions,
  });
  return async (app) => {
    app.post(
      "/v1/users/:userId/$disable",
      {
        schema: {
          operationId: "disableUser",
          tags,
          summary: "Disable an account",
          description:
            "Platform admins only (403 PLATFORM_ADMIN_REQUIRED otherwise); not your own account (409 CANNOT_DISABLE_SELF). The account can no longer " +
            "sign in; its sessions are revoked, so their access tokens stop at the next request on every instance; its API keys and tokens stop on every " +
            "org's routes (its memberships no longer count) until it is enabled again. Disabling a disabled account changes nothing. " +
            "Audited as user.disabled in the platform's audit chain. Also `plinth user disable --email E`.",
          security: bearerSecurity,
          params: UserParams,
          response: { 200: Account, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (req) => view(await s.accounts.disable({ kind: "admin", userId: requirePerson(req, "disable accounts").userId }, req.params.userId, actorOf(req))),
    );

    app.post(
      "/v1/users/:userId/$enable",
      {
        schema: {
          operationId: "enableUser",
          tags,
          summary: "Enable a disabled account",
          description:
            "Platform admins only (403 PLATFORM_ADMIN_REQUIRED otherwise). The account may sign in again and its memberships, API keys and service " +
            "accounts' keys count again; revoked sessions stay revoked. Enabling an enabled account changes nothing. Audited as user.enabled in the " +
            "platform's audit chain. Also `plinth user enable --email E`.",
          security: bearerSecurity,
          params: UserParams,
          response: { 200: Account, ...errors(400, 401, 403, 404) },
        },
      },
      async (req) => view(await s.accounts.enable({ kind: "admin", userId: requirePerson(req, "enable accounts").userId }, req.params.userId, actorOf(req))),
    );
  };
}

export const identitySchemas = [User, TokenPair];
