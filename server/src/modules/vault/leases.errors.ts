import { defineErrors } from "../../lib/errors.ts";

/** Error codes of the vault's secret leases (leases.service.ts). */
export const leaseError = defineErrors({
  /** No such lease in this organization, or not one the caller may see (its holder, or secrets:write). */
  SECRET_LEASE_NOT_FOUND: 404,
  /** Only the lease's holder uses or renews it. */
  SECRET_LEASE_NOT_HOLDER: 403,
  /** Past its expires_at: no more values, no renewal. */
  SECRET_LEASE_EXPIRED: 410,
  /** Revoked: no more values, no renewal. */
  SECRET_LEASE_REVOKED: 410,
  /** A leased secret was deleted (or is no longer the caller's to read): the lease no longer serves. */
  SECRET_LEASE_SECRET_GONE: 410,
  /** A name in `names` matches no secret of the scope it is looked up in. */
  SECRET_LEASE_UNKNOWN_NAME: 422,
});
