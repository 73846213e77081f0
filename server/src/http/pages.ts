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
  };
}
