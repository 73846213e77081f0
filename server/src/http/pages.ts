import type { FastifyPluginAsync } from "fastify";

/**
 * The pages that emailed links open. They never act on GET (mail scanners follow links): the person presses the
 * button, and the page posts the token to the API. The web console will replace them.
 */
const PAGES = {
  "/auth/verify-email": { title: "Verify your email", button: "Verify email", api: "/v1/auth/verify-email", password: false },
  "/auth/reset-password": { title: "Choose a new password", button: "Set password", api: "/v1/auth/password-reset/confirm", password: true },
  "/auth/magic-link": { title: "Sign in to Plinth", button: "Sign in", api: "/v1/auth/magic-link/verify", password: false },
} as const;

function page(p: (typeof PAGES)[keyof typeof PAGES]): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${p.title} · Plinth</title><style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}
button,input{font:inherit;padding:.5rem .75rem;margin:.25rem 0;width:100%;box-sizing:border-box}</style></head><body>
<h1>${p.title}</h1><form id="f">${p.password ? '<label>New password (12+ characters)<input type="password" id="pw" autocomplete="new-password" required minlength="12"></label>' : ""}
<button type="submit">${p.button}</button></form><p id="out" role="status"></p>
<script src="/auth/page.js" data-api="${p.api}" data-password="${p.password}"></script></body></html>`;
}

const SCRIPT = `(() => {
  const me = document.currentScript;
  const token = new URLSearchParams(location.search).get("token") || "";
  const out = document.getElementById("out");
  document.getElementById("f").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { token };
    if (me.dataset.password === "true") body.new_password = document.getElementById("pw").value;
    const res = await fetch(me.dataset.api, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    if (res.ok) { out.textContent = "Done."; return; }
    const p = await res.json().catch(() => ({}));
    out.textContent = p.detail || "That did not work.";
  });
})();`;

/**
 * An invitation link: a new person creates their account (the link proves the address), someone with an account
 * signs in and accepts. Both post to the API; nothing happens on GET.
 */
const INVITATION_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Join an organization · Plinth</title><style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}
button,input{font:inherit;padding:.5rem .75rem;margin:.25rem 0;width:100%;box-sizing:border-box}</style></head><body>
<h1>You are invited</h1>
<h2>New to Plinth? Create your account</h2><form id="register"><label>Your name<input id="name" required maxlength="100" autocomplete="name"></label>
<label>Password (12+ characters)<input type="password" id="new-pw" required minlength="12" autocomplete="new-password"></label>
<button type="submit">Create account and join</button></form>
<h2>Have an account? Sign in to accept</h2><form id="accept"><label>Email<input type="email" id="email" required autocomplete="email"></label>
<label>Password<input type="password" id="pw" required autocomplete="current-password"></label>
<button type="submit">Sign in and accept</button></form><p id="out" role="status"></p>
<script src="/invitations/page.js"></script></body></html>`;

const INVITATION_SCRIPT = `(() => {
  const token = new URLSearchParams(location.search).get("token") || "";
  const out = document.getElementById("out");
  const val = (id) => document.getElementById(id).value;
  const post = (url, body, bearer) => fetch(url, { method: "POST", headers: { "content-type": "application/json", ...(bearer ? { authorization: "Bearer " + bearer } : {}) }, body: JSON.stringify(body) });
  const fail = async (res) => { const p = await res.json().catch(() => ({})); out.textContent = p.detail || "That did not work."; };
  document.getElementById("register").addEventListener("submit", async (e) => {
    e.preventDefault();
    const res = await post("/v1/invitations/register", { token, name: val("name"), password: val("new-pw") });
    if (res.ok) { const r = await res.json(); out.textContent = "Welcome! You joined " + r.org.name + "."; } else await fail(res);
  });
  document.getElementById("accept").addEventListener("submit", async (e) => {
    e.preventDefault();
    const login = await post("/v1/auth/login", { email: val("email"), password: val("pw") });
    if (!login.ok) return fail(login);
    const { access_token } = await login.json();
    const res = await post("/v1/invitations/accept", { token }, access_token);
    if (res.ok) { const r = await res.json(); out.textContent = "You joined " + r.org.name + "."; } else await fail(res);
  });
})();`;

export function authPagesRoutes(): FastifyPluginAsync {
  return async (app) => {
    for (const [path, p] of Object.entries(PAGES)) {
      const html = page(p);
      app.get(path, { schema: { hide: true } }, async (_req, reply) =>
        reply
          .type("text/html; charset=utf-8")
          .header("content-security-policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'none'")
          .header("referrer-policy", "no-referrer")
          .send(html),
      );
    }
    app.get("/auth/page.js", { schema: { hide: true } }, async (_req, reply) => reply.type("text/javascript; charset=utf-8").send(SCRIPT));
    app.get("/invitations/accept", { schema: { hide: true } }, async (_req, reply) =>
      reply
        .type("text/html; charset=utf-8")
        .header("content-security-policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'none'")
        .header("referrer-policy", "no-referrer")
        .send(INVITATION_PAGE),
    );
    app.get("/invitations/page.js", { schema: { hide: true } }, async (_req, reply) => reply.type("text/javascript; charset=utf-8").send(INVITATION_SCRIPT));
  };
}
