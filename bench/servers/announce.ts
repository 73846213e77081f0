import type { FastifyInstance } from "fastify";

/** Tells the bench which port the server listens on (IPC when started by the bench, else a line on stderr). */
export function announce(app: FastifyInstance): void {
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : NaN;
  if (process.send) process.send({ listening: port });
  else process.stderr.write(`listening on http://127.0.0.1:${port}\n`);
}

/** Listens on PORT (loopback), announces the port, and on SIGTERM closes the app, then `after` (a pool), and exits. */
export async function serve(app: FastifyInstance, after: () => Promise<unknown> = async () => {}): Promise<void> {
  await app.listen({ port: Number(process.env.PORT ?? 0), host: "127.0.0.1" });
  announce(app);
  process.once(
    "SIGTERM",
    () =>
      void app
        .close()
        .then(after)
        .finally(() => process.exit(0)),
  );
}
