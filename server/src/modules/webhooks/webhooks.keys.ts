import type { Executor } from "../../db/client.ts";
import type { Kms } from "../../kms/kms.ts";
import type { EnvelopeHolder } from "../vault/vault-keys.service.ts";
import type { WebhooksRepo } from "./webhooks.repo.ts";
import { secretAad } from "./webhooks.service.ts";

/**
 * The endpoints' signing secrets sit under the org's KMS envelopes: an org key rotation re-wraps them with the vault's
 * secrets (the vault's EnvelopeHolder port), and an old key version is retired only once none of them uses it.
 */
export function webhookEnvelopes(deps: { kms: Pick<Kms, "rewrapDeks">; repo: Pick<WebhooksRepo, "sealedSecrets" | "updateEndpoint"> }): EnvelopeHolder {
  const { kms, repo } = deps;
  return {
    async kekVersionsInUse(tx: Executor, orgId: string): Promise<Set<number>> {
      const used = new Set<number>();
      for (const e of await repo.sealedSecrets(tx, orgId)) {
        used.add(e.secret.kekVersion);
        if (e.previousSecret) used.add(e.previousSecret.kekVersion);
      }
      return used;
    },

    async rewrap(tx: Executor, orgId: string, active: number): Promise<number> {
      let n = 0;
      for (const e of await repo.sealedSecrets(tx, orgId)) {
        const old = [e.secret, e.previousSecret].filter((s) => s && s.kekVersion < active);
        if (!old.length) continue;
        const aad = secretAad(orgId, e.id);
        const [secret, previous] = await kms.rewrapDeks(tx, orgId, [
          { envelope: e.secret, aad },
          ...(e.previousSecret ? [{ envelope: e.previousSecret, aad }] : []),
        ]);
        await repo.updateEndpoint(tx, orgId, e.id, {
          ...(secret ? { secret: { ...e.secret, ...secret } } : {}),
          ...(previous && e.previousSecret ? { previousSecret: { ...e.previousSecret, ...previous } } : {}),
        });
        n += old.length;
      }
      return n;
    },
  };
}
