/** A real SMTP server (smtp-server) in the test process; tests wait for a message and follow its links. */
import { EventEmitter } from "node:events";
import { simpleParser } from "mailparser";
import { SMTPServer } from "smtp-server";
import { freePort } from "./services.ts";

export interface ReceivedMail {
  to: string;
  subject: string;
  text: string;
  html: string;
}

export interface TestSmtp {
  url: string;
  messages: ReceivedMail[];
  /** Resolves with the next (or an already received, not yet taken) message to `to` that matches. */
  waitFor(to: string, match?: (m: ReceivedMail) => boolean, timeoutMs?: number): Promise<ReceivedMail>;
  close(): Promise<void>;
}

export async function startSmtp(): Promise<TestSmtp> {
  const events = new EventEmitter();
  const messages: ReceivedMail[] = [];
  const taken = new Set<ReceivedMail>();
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData(stream, _session, cb) {
      simpleParser(stream)
        .then((parsed) => {
          const to = Array.isArray(parsed.to) ? parsed.to[0] : parsed.to;
          const mail = {
            to: to?.value[0]?.address ?? "",
            subject: parsed.subject ?? "",
            text: parsed.text ?? "",
            html: typeof parsed.html === "string" ? parsed.html : "",
          };
          messages.push(mail);
          events.emit("mail", mail);
          cb();
        })
        .catch(cb);
    },
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    waitFor(to, match = () => true, timeoutMs = 10_000) {
      const want = (m: ReceivedMail) => !taken.has(m) && m.to.toLowerCase() === to.toLowerCase() && match(m);
      const already = messages.find(want);
      if (already) {
        taken.add(already);
        return Promise.resolve(already);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          events.off("mail", onMail);
          reject(new Error(`no mail to ${to} within ${timeoutMs} ms`));
        }, timeoutMs);
        const onMail = (m: ReceivedMail) => {
          if (!want(m)) return;
          clearTimeout(timer);
          events.off("mail", onMail);
          taken.add(m);
          resolve(m);
        };
        events.on("mail", onMail);
      });
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The first link in a mail's text that starts with `prefix`, and its token. */
export function linkIn(mail: ReceivedMail, prefix: string): { url: URL; token: string } {
  const m = mail.text.match(/https?:\/\/\S+/g)?.find((l) => l.includes(prefix));
  if (!m) throw new Error(`no link containing ${prefix} in mail "${mail.subject}"`);
  const url = new URL(m);
  return { url, token: url.searchParams.get("token") ?? "" };
}
