/** True when PostgreSQL (or PGlite) refused a write for a unique constraint, anywhere in the error's cause chain. */
export function isUniqueViolation(e: unknown): boolean {
  for (let c: unknown = e; c && typeof c === "object"; c = (c as { cause?: unknown }).cause) {
    if ((c as { code?: unknown }).code === "23505") return true;
  }
  return false;
}
