import type { MailMessage } from "../../mail/mailer.ts";

/** Where the emailed link points; the page there posts the token to the accept or register endpoint. */
export const ACCEPT_PATH = "/invitations/accept";

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);
}

/** The invitation mail: who invites, to which organization, as what, and the single-use link. */
export function renderInvitationEmail(p: {
  to: string;
  orgName: string;
  inviterName: string | undefined;
  role: string;
  token: string;
  publicUrl: string;
  expiresAt: Date;
}): MailMessage {
  const link = `${p.publicUrl}${ACCEPT_PATH}?token=${encodeURIComponent(p.token)}`;
  const who = p.inviterName ? `${p.inviterName} invited you` : "You are invited";
  const intro = `${who} to join ${p.orgName} on Plinth as ${p.role}.`;
  const expiry = `The link works once and expires on ${p.expiresAt.toISOString().slice(0, 16).replace("T", " ")} UTC.`;
  const after = "Open it to accept with your account, or to create one with this address.";
  return {
    to: p.to,
    subject: `Join ${p.orgName} on Plinth`,
    text: `Hello,\n\n${intro}\n\nAccept the invitation: ${link}\n\n${after} ${expiry}\n\nIf you did not expect this invitation, ignore this mail.\n`,
    html:
      `<p>Hello,</p><p>${escapeHtml(intro)}</p>` +
      `<p><a href="${escapeHtml(link)}">Accept the invitation</a></p>` +
      `<p>${escapeHtml(after)} ${escapeHtml(expiry)}</p><p>If you did not expect this invitation, ignore this mail.</p>`,
  };
}
