import { defineErrors } from "../../lib/errors.ts";

/** Error codes of event ingestion (an invalid event is the platform's VALIDATION_FAILED naming `events.<i>.<field>`). */
export const ingestionError = defineErrors({
  /** The org's workers are behind (oldest unprocessed event too old, or too many unprocessed): retry after Retry-After. */
  INGESTION_BACKLOGGED: 429,
});
