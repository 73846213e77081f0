import type { MailMessage } from "../../mail/mailer.ts";
import type { EmailTokenPurpose } from "./identity.repo.ts";

const COPY: Record<EmailTokenPurpose, { subject: string; path: string; intro: string; action: string; expiry: string }> = {
  verify_email: {
    subject: "Verify your email address",
    path: "/auth/verify-email",
    intro: "Confirm that this is your email address for Plinth.",
    action: "Verify email",
    expiry: "24 hours",
  },
  reset_password: {
    subject: "Reset your Plinth password",
    path: "/auth/reset-password",
    intro: "Someone (hopefully you) asked to reset your Plinth password. If it was not you, ignore this mail.",
    action: "Choose a new password",
    expiry: "1 hour",
  },
  magic_link: {
    subject: "Your Plinth sign-in link",
    path: "/auth/magic-link",
    intro: "Use this link to sign in to Plinth. If you did not ask for it, ignore this mail.",
    action: "Sign in",
    expiry: "15 minutes",
  },
};

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);
}

export function renderEmail(purpose: EmailTokenPurpose, p: { to: string; name: string; token: string; publicUrl: string }): MailMessage {
  const c = COPY[purpose];
  const link = `${p.publicUrl}${c.path}?token=${encodeURIComponent(p.token)}`;
  return {
    to: p.to,
    subject: c.subject,
    text: `Hello ${p.name},\n\n${c.intro}\n\n${c.action}: ${link}\n\nThe link works once and expires in ${c.expiry}.\n`,
    html:
      `<p>Hello ${escapeHtml(p.name)},</p><p>${escapeHtml(c.intro)}</p>` +
      `<p><a href="${escapeHtml(link)}">${escapeHtml(c.action)}</a></p>` +
      `<p>The link works once and expires in ${c.expiry}.</p>`,
  };
}
