/**
 * .env files for `plinth secrets import` and `export --format env`. Our own reader rather than the `dotenv` package's
 * parse(), because an import must name the line of each mistake and refuse what dotenv silently skips; the tests hold
 * it to dotenv (a dev dependency) as the oracle.
 *
 * The parser reads what dotenv's parse() reads, line by line so that it can name the line of a mistake:
 * - `NAME=value`, `export NAME=value` and `NAME: value`; blank lines and `# comments` are skipped.
 * - Unquoted values end at `#` (a comment) and are trimmed.
 * - 'single' and `backtick` quotes are literal; "double" quotes turn \n and \r into a newline and a carriage return
 *   (and nothing else, as dotenv does). A quoted value may span lines; text after its closing quote may only be a
 *   comment.
 * Stricter than dotenv, on purpose: a line that is not an assignment, an unterminated quote, text after a closing
 * quote and a name given twice are errors (dotenv skips the first three and keeps the last of the fourth).
 *
 * The formatter writes each value in the quotes that dotenv's parse() (and this parser) read back unchanged.
 */

export interface EnvEntry {
  name: string;
  value: string;
  /** 1-based line where the assignment starts. */
  line: number;
}

export interface EnvError {
  line: number;
  message: string;
}

const ASSIGNMENT = /^[ \t]*(?:export[ \t]+)?([\w.-]+)(?:[ \t]*=[ \t]*|:[ \t]+)/;
const QUOTES = new Set(["'", '"', "`"]);
/** What may follow a closing quote on its line. */
const TAIL = /^[ \t]*(?:#.*)?$/;

/** Every assignment of `text`, or the errors (each with its line) when any line is not one. */
export function parseEnv(text: string): { entries: EnvEntry[]; errors: EnvError[] } {
  const src = text.replace(/\r\n?/g, "\n");
  const entries: EnvEntry[] = [];
  const errors: EnvError[] = [];
  const seen = new Map<string, number>();
  let pos = 0;
  let line = 1;
  while (pos < src.length) {
    const end = src.indexOf("\n", pos) === -1 ? src.length : src.indexOf("\n", pos);
    const raw = src.slice(pos, end);
    const startLine = line;
    if (/^\s*(#.*)?$/.test(raw)) {
      pos = end + 1;
      line++;
      continue;
    }
    const m = ASSIGNMENT.exec(raw);
    if (!m) {
      errors.push({ line, message: "expected NAME=value (or a # comment)" });
      pos = end + 1;
      line++;
      continue;
    }
    const name = m[1];
    const valueStart = pos + m[0].length;
    let value: string;
    const q = src[valueStart];
    if (QUOTES.has(q)) {
      const close = closingQuote(src, valueStart + 1, q);
      if (close === undefined) {
        errors.push({ line, message: `the ${q} quote of ${name} is never closed` });
        pos = end + 1;
        line++;
        continue;
      }
      value = src.slice(valueStart + 1, close);
      if (q === '"') value = value.replace(/\\n/g, "\n").replace(/\\r/g, "\r");
      const lineEnd = src.indexOf("\n", close) === -1 ? src.length : src.indexOf("\n", close);
      line += countNewlines(src, pos, lineEnd);
      pos = lineEnd + 1;
    } else {
      const hash = raw.indexOf("#", valueStart - pos);
      value = raw.slice(valueStart - pos, hash === -1 ? undefined : hash).trim();
      pos = end + 1;
    }
    line++;
    const before = seen.get(name);
    if (before !== undefined) errors.push({ line: startLine, message: `${name} is also set on line ${before}` });
    else {
      seen.set(name, startLine);
      entries.push({ name, value, line: startLine });
    }
  }
  return { entries, errors };
}

/**
 * Where the quoted value starting at `from` ends, as dotenv's expression `q(?:\\q|[^q])*q` followed by only a
 * comment on its line decides: `\q` does not close it, unless that is the only way the rest of the line is a comment.
 */
function closingQuote(src: string, from: number, q: string): number | undefined {
  const candidates: number[] = [];
  for (let i = from; i < src.length; i++) {
    if (src[i] === "\\" && src[i + 1] === q) {
      candidates.push(i + 1);
      i++;
    } else if (src[i] === q) {
      candidates.push(i);
      break;
    }
  }
  for (let k = candidates.length - 1; k >= 0; k--) {
    const c = candidates[k];
    const lineEnd = src.indexOf("\n", c) === -1 ? src.length : src.indexOf("\n", c);
    if (TAIL.test(src.slice(c + 1, lineEnd))) return c;
  }
  return undefined;
}

function countNewlines(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (s[i] === "\n") n++;
  return n;
}

/**
 * `value` quoted so that dotenv's parse() gives it back unchanged, or undefined when no quoting can (a value with ',
 * ` and " together, or with " or a literal \n beside a carriage return): export it as JSON instead.
 */
export function quoteEnvValue(value: string): string | undefined {
  // dotenv turns every \r\n and \r of the file into \n: a carriage return survives only as "\r" in double quotes
  if (!value.includes("\r")) {
    if (!value.includes("'")) return `'${value}'`;
    if (!value.includes("`")) return `\`${value}\``;
  }
  if (!value.includes('"') && !/\\[nr]/.test(value)) return `"${value.replace(/\n/g, "\\n").replace(/\r/g, "\\r")}"`;
  return undefined;
}

/** `NAME='value'` lines; the names of values no quoting carries, when there are any (nothing is written then). */
export function formatEnv(entries: readonly { name: string; value: string }[]): { text: string } | { unquotable: string[] } {
  const lines: string[] = [];
  const unquotable: string[] = [];
  for (const e of entries) {
    const quoted = quoteEnvValue(e.value);
    if (quoted === undefined) unquotable.push(e.name);
    else lines.push(`${e.name}=${quoted}`);
  }
  return unquotable.length ? { unquotable } : { text: lines.map((l) => `${l}\n`).join("") };
}
