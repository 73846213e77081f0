import { defineErrors } from "../../lib/errors.ts";

/** Error codes of outbound webhooks (an invalid field, a refused URL among them, is the platform's VALIDATION_FAILED naming it). */
export const webhooksError = defineErrors({
  WEBHOOK_ENDPOINT_NOT_FOUND: 404,
  WEBHOOK_DELIVERY_NOT_FOUND: 404,
  /** A disabled endpoint gets no deliveries: enable it first (PATCH enabled: true). */
  WEBHOOK_ENDPOINT_DISABLED: 409,
});
