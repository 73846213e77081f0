import pino, { type Logger } from "pino";

/** Paths never written to logs: credentials in headers and bodies, tokens anywhere. */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  "*.password",
  "*.new_password",
  "*.current_password",
  "*.refresh_token",
  "*.access_token",
  "*.token",
  "*.secret",
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: "[REDACTED]" },
      serializers: {
        // query strings can carry emailed tokens (?token=…): keep the parameter names, drop their values
        req: (req: { method: string; url: string; hostname?: string; ip?: string; id?: string }) => ({
          method: req.method,
          url: req.url.replace(/([?&](?:token|code|state|key)=)[^&]*/gi, "$1[REDACTED]"),
          host: req.hostname,
          ip: req.ip,
        }),
      },
    },
    destination,
  );
}
