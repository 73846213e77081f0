import { defineErrors } from "../../lib/errors.ts";

export const orgsError = defineErrors({ SLUG_TAKEN: 409, ORG_NOT_FOUND: 404 });

/** Deleting, restoring and purging an organization. */
export const lifecycleError = defineErrors({ PERSONAL_ORG: 409, CONFIRMATION_MISMATCH: 400, ORG_PURGE_PASSED: 410 });
