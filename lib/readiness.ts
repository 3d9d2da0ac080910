/**
 * What `/ready` checks on a node: the things this node needs to do its work.
 * The transporter when it is on a mesh, Redis when configured (cacher, rate
 * limits), MongoDB when this node hosts a service with a database, and each
 * service this node is configured to host (`SERVICES`, all of them embedded):
 * it must be running here, and its own `checkReady` method must pass (geo: its
 * index loaded; doors: its door store answering; hardware: the embedded broker
 * listening or the external one connected; database services: their store).
 *
 * A gateway also names the remote services its routes call (`needs`). One of
 * them without a live node on the mesh is listed under `degraded` but leaves
 * the node ready (200): pulling every gateway out of the load balancer because
 * one service is gone would turn a partial outage (e.g. no geo: nearby fails)
 * into a total one, while the gateway already answers those routes with a fast
 * 503. A service the node hosts itself (embedded: all) has no other home, so
 * its failing check makes the node not ready (503).
 */
import type { ServiceBroker } from "moleculer";
import mongoose from "mongoose";
import type { Config } from "../config";

export type CheckResult = "ok" | string;

export interface Readiness {
	ready: boolean;
	nodeID: string;
	checks: Record<string, CheckResult>;
	/** Remote services the node's routes need that have no live node on the mesh (the node stays ready). */
	degraded?: string[];
}

/** A service's own readiness: throws (with what is wrong) when it cannot do its work. */
interface ReadyProbe {
	checkReady?: () => Promise<void> | void;
}

const DB_SERVICES = new Set(["users", "merchants", "orders", "billing", "alerts"]);

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
	return new Promise<T>((resolve, reject) => {
		const t = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
		p.then(v => { clearTimeout(t); resolve(v); }, e => { clearTimeout(t); reject(e); });
	});
}

export async function checkReadiness(broker: ServiceBroker, config: Config, opts: { needs?: readonly string[] } = {}): Promise<Readiness> {
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
	for (const name of config.services) {
		if (name === "api") continue; // answering this is its check
		jobs.push(run(name, async () => {
			const service = broker.getLocalService(name) as (ReadyProbe & object) | undefined;
			if (!service) throw new Error("not running on this node");
			await service.checkReady?.();
		}));
	}
	await Promise.all(jobs);
	const answer: Readiness = { ready: Object.values(checks).every(c => c === "ok"), nodeID: broker.nodeID, checks };
	const remote = (opts.needs ?? []).filter(n => !(config.services as readonly string[]).includes(n));
	if (remote.length) {
		const live = new Set((broker.registry.getServiceList({ onlyAvailable: true, skipInternal: true }) as { name: string }[]).map(s => s.name));
		const degraded = remote.filter(n => !live.has(n)).sort();
		if (degraded.length) answer.degraded = degraded;
	}
	return answer;
}
