/**
 * A stand-in for a provider's OAuth token endpoint (node:http on 127.0.0.1): answers the refresh_token grant per
 * refresh token with payloads shaped as Atlassian's and Microsoft Entra's documentation shows them, and records every
 * request it gets.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface TokenReply {
  status: number;
  body: Record<string, unknown>;
}

/** Atlassian (auth.atlassian.com/oauth/token) with rotating refresh tokens: a new refresh token every time. */
export const atlassianRefresh = (access: string, refresh: string): TokenReply => ({
  status: 200,
  body: { access_token: access, refresh_token: refresh, expires_in: 3600, scope: "read:jira-work offline_access", token_type: "Bearer" },
});

/** Microsoft Entra (login.microsoftonline.com/{tenant}/oauth2/v2.0/token), with the id_token `openid` brings. */
export const entraRefresh = (access: string, refresh: string): TokenReply => ({
  status: 200,
  body: {
    token_type: "Bearer",
    scope: "499b84ac-1321-427f-aa17-267ca6975798/vso.work_write",
    expires_in: 3599,
    ext_expires_in: 3599,
    access_token: access,
    refresh_token: refresh,
    id_token: "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2xvZ2luLm1pY3Jvc29mdG9ubGluZS5jb20vdGVuYW50L3YyLjAifQ.c2ln",
  },
});

/** Google (oauth2.googleapis.com/token): no refresh token in a refresh's answer. */
export const googleRefresh = (access: string): TokenReply => ({
  status: 200,
  body: { access_token: access, expires_in: 3599, scope: "https://www.googleapis.com/auth/drive.readonly", token_type: "Bearer" },
});

/** Entra's answer to an expired or revoked refresh token (its description carries request details, never shown). */
export const entraInvalidGrant = (): TokenReply => ({
  status: 400,
  body: {
    error: "invalid_grant",
    error_description: "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity. Trace ID: 0000",
    error_codes: [70008],
    timestamp: "2026-12-04 02:00:00Z",
    trace_id: "00000000-0000-0000-0000-000000000000",
    correlation_id: "00000000-0000-0000-0000-000000000000",
  },
});

export interface MockTokenEndpoint {
  url: string;
  /** What the endpoint answers to a refresh token (an unknown one gets invalid_grant); a promise holds the answer back. */
  on(refreshToken: string, reply: () => TokenReply | Promise<TokenReply>): void;
  /** Every form the endpoint received, in order. */
  requests: URLSearchParams[];
  /** Resolves with the next request's form once it has arrived (before it is answered). */
  nextRequest(): Promise<URLSearchParams>;
  close(): Promise<void>;
}

export async function startTokenEndpoint(): Promise<MockTokenEndpoint> {
  const replies = new Map<string, () => TokenReply | Promise<TokenReply>>();
  const requests: URLSearchParams[] = [];
  const waiting: ((p: URLSearchParams) => void)[] = [];
  const server: Server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const form = new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
    requests.push(form);
    for (const w of waiting.splice(0)) w(form);
    const reply = replies.get(form.get("refresh_token") ?? "");
    const r = req.method === "POST" && form.get("grant_type") === "refresh_token" && reply ? await reply() : { status: 400, body: { error: "invalid_grant" } };
    res.writeHead(r.status, { "content-type": "application/json", "cache-control": "no-store" });
    res.end(JSON.stringify(r.body));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/oauth/token`,
    on: (token, reply) => void replies.set(token, reply),
    requests,
    nextRequest: () => new Promise((resolve) => waiting.push(resolve)),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
