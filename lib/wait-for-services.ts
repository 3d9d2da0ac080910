import type { ServiceBroker, ServiceSchema } from "moleculer";

/**
 * broker.waitForServices that gives up as soon as the broker stops, and whose timer does not
 * hold the process. Moleculer's own keeps polling after broker.stop() until its timeout, which
 * for `dependencies` is never: a start that failed (a port taken) left a service waiting for
 * one that would not come, and the process could not exit.
 */
export function waitForServicesWhileRunning(broker: ServiceBroker, names: string[], timeoutMs = Infinity, intervalMs = 250): Promise<void> {
	const available = (name: string) => isServiceAvailable(broker, name);
	const deadline = Date.now() + timeoutMs;
	return new Promise((resolve, reject) => {
		const check = () => {
			if (broker.stopping) return reject(new Error("the node is stopping"));
			if (names.every(available)) return resolve();
			if (Date.now() > deadline) return reject(new Error(`${names.join(", ")} not available after ${Math.round(timeoutMs / 1000)} s`));
			setTimeout(check, intervalMs).unref();
		};
		check();
	});
}

/** An instance of the service on any node, as Moleculer's own waitForServices asks (its typings want a node id). */
export function isServiceAvailable(broker: ServiceBroker, name: string): boolean {
	return (broker.registry.hasService as (fullName: string) => boolean).call(broker.registry, name);
}

/** Moleculer's `dependencies`, stop-aware: the service starts once these are available anywhere on the mesh. */
export function dependsOn(names: string[]): Partial<ServiceSchema> {
	return {
		async started() {
			const missing = names.filter(name => !isServiceAvailable(this.broker, name));
			if (missing.length) this.logger.info(`Waiting for service(s) '${missing.join(", ")}'...`);
			await waitForServicesWhileRunning(this.broker, names);
		},
	};
}
