/**
 * Cursor pagination, the one way every list pages (`?cursor=&limit=`, `{ items, next_cursor }`): a route reads the
 * request with `pageRequest`, asks its repository for `fetch` rows (one more than the page, to learn whether another
 * page follows) after `cursor`, and answers `page(rows, limit, cursorOf)`. The cursor is the last row's sort key,
 * base64url-encoded; it is opaque to clients, but checked on the way in so a forged one is a 400 naming `cursor`,
 * never a query on garbage.
 */
import { Type, type TSchema } from "typebox";
import { platformError } from "./errors.ts";
import { isId, type IdKind } from "./ids.ts";

export const DEFAULT_LIMIT = 50;
export const MAX_LIMIT = 200;

export const Cursor = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: "^[A-Za-z0-9_-]+$",
  description: "Opaque cursor from a previous page's next_cursor",
});
export const Limit = Type.Integer({ minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT, description: "Page size (1–200)" });

/** The paging fields of a list's querystring, to spread beside its filters. */
export const pageQuery = { cursor: Type.Optional(Cursor), limit: Type.Optional(Limit) };
/** The querystring of a list that has no filters. */
export const PageQuery = Type.Object(pageQuery, { additionalProperties: false });

/** The response of a list: one page of `item`s and the cursor of the next. */
export function Page<T extends TSchema>(item: T) {
  return Type.Object({
    items: Type.Array(item, { description: "At most limit items, in the list's order" }),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: "Pass as cursor for the next page; null on the last page" }),
  });
}

export function encodeCursor(key: string): string {
  return Buffer.from(key).toString("base64url");
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  return cursor === undefined ? undefined : Buffer.from(cursor, "base64url").toString("utf8");
}

/** Reads a decoded cursor back into the list's sort key; undefined when it is not one this list hands out. */
export type CursorParser<C> = (key: string) => C | undefined;

/** A cursor that carries an id of `kind` (lists ordered by their time-ordered ids). */
export const idCursor =
  (kind: IdKind): CursorParser<string> =>
  (key) =>
    isId(kind, key) ? key : undefined;

export interface PageRequest<C> {
  /** The page size the caller asked for (default 50). */
  limit: number;
  /** How many rows to fetch: one more than the page. */
  fetch: number;
  /** The sort key to continue after, or undefined for the first page. */
  cursor: C | undefined;
}

/** The page a list request asks for; a cursor the parser refuses is a 400 naming `cursor`. */
export function pageRequest<C>(q: { cursor?: string; limit?: number }, parse: CursorParser<C>): PageRequest<C> {
  const limit = q.limit ?? DEFAULT_LIMIT;
  const key = decodeCursor(q.cursor);
  const cursor = key === undefined ? undefined : parse(key);
  if (key !== undefined && cursor === undefined) throw platformError("VALIDATION_FAILED", "cursor is not a next_cursor of this list.", { field: "cursor" });
  return { limit, fetch: limit + 1, cursor };
}

export interface PageOf<T> {
  items: T[];
  next_cursor: string | null;
}

/**
 * The page out of up to `limit + 1` fetched rows: the first `limit`, and when more were found, the cursor of the
 * last one shown (`cursorOf` gives its sort key). `map` shapes each row for the response.
 */
export function page<R>(rows: R[], limit: number, cursorOf: (row: R) => string): PageOf<R>;
export function page<R, T>(rows: R[], limit: number, cursorOf: (row: R) => string, map: (row: R) => T): PageOf<T>;
export function page<R, T>(rows: R[], limit: number, cursorOf: (row: R) => string, map?: (row: R) => T): PageOf<R | T> {
  const shown = rows.length > limit ? rows.slice(0, limit) : rows;
  const next_cursor = rows.length > limit ? encodeCursor(cursorOf(shown[shown.length - 1])) : null;
  return { items: map ? shown.map(map) : shown, next_cursor };
}
