/**
 * A service that waits for another gives up when its node stops: a start that failed (a port
 * taken) must not leave a poll running that keeps the process from exiting.
 */
import { ServiceBroker, type Service } from "moleculer";
import { dependsOn, waitForServicesWhileRunning } from "../../lib/wait-for-services";

const newBroker = () => new ServiceBroker({ logger: false, nodeID: "waiting", registry: { stopDelay: 0 } });

describe("waiting for services", () => {
	it("resolves once the service is registered, on this node or another", async () => {
		const broker = newBroker();
		await broker.start();
		try {
			const waiting = waitForServicesWhileRunning(broker, ["late"], 5_000, 10);
			broker.createService({ name: "late" });
			await expect(waiting).resolves.toBeUndefined();
		} finally {
			await broker.stop();
		}
	});

	it("rejects when its time is up", async () => {
		const broker = newBroker();
		await broker.start();
		try {
			await expect(waitForServicesWhileRunning(broker, ["never"], 30, 10)).rejects.toThrow("never not available");
		} finally {
			await broker.stop();
		}
	});

	it("a failed start: the service still waiting for its dependency gives up when the node stops", async () => {
		const broker = newBroker();
		let waiterStarted = false;
		broker.createService({ name: "waiter", mixins: [dependsOn(["absent"])], started: () => void (waiterStarted = true) });
		broker.createService({ name: "broken", started: () => Promise.reject(new Error("port taken")) });
		const started = broker.start();
		// The same hook Moleculer is running for the waiter, called once more to see how it ends.
		const waited = (dependsOn(["absent"]).started as (this: Service) => Promise<void>).call(broker.getLocalService("waiter")!);
		await expect(started).rejects.toThrow("port taken");
		await broker.stop();
		await expect(waited).rejects.toThrow("the node is stopping");
		expect(waiterStarted).toBe(false);
	});
});
