/**
 * What `/ready` checks on a node: the things this node needs to do its work.
 * The transporter when it is on a mesh, Redis when configured (cacher, rate
 * limits), MongoDB when this node hosts a service with a database.
 */
import type { ServiceBroker } from "moleculer";
import mongoose from "mongoose";
import type { Config } from "../config";

export type CheckResult = "ok" | string;

export interface Readiness {
	ready: boolean;
	nodeID: string;
	checks: Record<string, CheckResult>;
}

const DB_SERVICES = new Set(["users", "merchants", "orders", "billing", "alerts"]);

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
	return new Promise<T>((resolve, reject) => {
		const t = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
		p.then(v => { clearTimeout(t); resolve(v); }, e => { clearTimeout(t); reject(e); });
	});
}

export async function checkReadiness(broker: ServiceBroker, config: Config): Promise<Readiness> {
	const checks: Record<string, CheckResult> = {};
	const run = async (name: string, fn: () => Promise<void> | void) => {
		try {
			await withTimeout(Promise.resolve(fn()), 1000, name);
			checks[name] = "ok";
		} catch (err) {
			checks[name] = (err as Error).message;
		}
	};
	const jobs: Promise<void>[] = [];
	// Until every local service has started, this node cannot serve what it announces.
	jobs.push(run("services", () => {
		if (!(broker as unknown as { started: boolean }).started) throw new Error("services are still starting");
		// startNode makes the admin account once the services started: not ready before it exists.
		const users = broker.getLocalService("users") as unknown as { adminBootstrapped?: boolean } | undefined;
		if (users && !users.adminBootstrapped) throw new Error("the admin account is being set up");
	}));
	if (config.transporter) {
		jobs.push(run("transporter", () => {
			if (!broker.transit?.connected) throw new Error("not connected to the transporter");
		}));
	}
	const cacherClient = (broker.cacher as any)?.client;
	if (config.redisUrl && cacherClient?.ping) {
		jobs.push(run("redis", async () => {
			await cacherClient.ping();
		}));
	}
	if (config.mongoUri && config.services.some(s => DB_SERVICES.has(s))) {
		jobs.push(run("mongodb", async () => {
			if (mongoose.connection.readyState !== 1) throw new Error("not connected to MongoDB");
			await mongoose.connection.db!.admin().ping();
		}));
	}
	await Promise.all(jobs);
	return { ready: Object.values(checks).every(c => c === "ok"), nodeID: broker.nodeID, checks };
}
