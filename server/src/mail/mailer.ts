import nodemailer from "nodemailer";
import type { Logger } from "pino";
import type { Config } from "../config.ts";
import type { Database } from "../db/client.ts";
import { mailOutbox } from "../db/schema/index.ts";
import { newId } from "../lib/ids.ts";

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html?: string;
}

export interface Mailer {
  readonly kind: "smtp" | "outbox";
  send(msg: MailMessage): Promise<void>;
  /** For `plinth doctor`: can mail go out? Resolves with a sentence, rejects with the reason. */
  check(): Promise<string>;
  close(): void;
}

/**
 * `logBodies`: the dev outbox also logs each mail's text (links included) — only in the embedded, single-machine
 * mode, so a production server left without SMTP_URL never writes live sign-in tokens to its logs.
 */
export function createMailer(deps: { config: Config["mail"]; db: Database; log: Logger; logBodies?: boolean }): Mailer {
  const { config, db, log } = deps;
  if (config.kind === "smtp") {
    const transport = nodemailer.createTransport(config.url);
    return {
      kind: "smtp",
      async send(msg) {
        await transport.sendMail({ from: config.from, ...msg });
      },
      async check() {
        await transport.verify();
        return "SMTP server accepted the connection";
      },
      close: () => transport.close(),
    };
  }
  // No SMTP server: mail lands in the dev outbox table and the log, so a developer can follow links locally.
  return {
    kind: "outbox",
    async send(msg) {
      await db.tx({}, (tx) => tx.insert(mailOutbox).values({ id: newId("mail"), ...msg }));
      if (deps.logBodies) log.info({ to: msg.to, subject: msg.subject, devOutbox: msg.text }, "mail kept in the dev outbox (SMTP_URL is unset)");
      else log.warn({ to: msg.to, subject: msg.subject }, "SMTP_URL is unset: mail kept in the dev outbox only (plinth mail list)");
    },
    async check() {
      return "SMTP_URL is unset: mail goes to the dev outbox (`plinth mail list`)";
    },
    close: () => {},
  };
}
