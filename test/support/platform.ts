/**
 * Test support: start the platform in-process (in-memory NeDB, HTTP on a
 * free port) and talk to it over real HTTP.
 */
import type { AddressInfo } from "node:net";
import { loadConfig, type Config } from "../../config";
import { startNode, type StartedNode } from "../../server";

export const ADMIN = { username: "admin", password: "admin-secret-pass-1" };

export interface HttpAnswer<T = any> {
	status: number;
	body: T;
	headers: Headers;
}

export type Client = (method: string, path: string, body?: unknown, opts?: { token?: string; headers?: Record<string, string>; raw?: string }) => Promise<HttpAnswer>;

export function httpClient(baseUrl: string): Client {
	return async (method, path, body, opts = {}) => {
		const headers: Record<string, string> = { ...(opts.headers ?? {}) };
		if (opts.token) headers.authorization = `Bearer ${opts.token}`;
		let payload: string | undefined = opts.raw;
		if (body !== undefined) {
			payload = JSON.stringify(body);
			headers["content-type"] = "application/json";
		} else if (opts.raw !== undefined) headers["content-type"] ??= "application/json";
		const res = await fetch(baseUrl + path, { method, headers, body: payload });
		const text = await res.text();
		let parsed: unknown = text;
		try {
			parsed = text ? JSON.parse(text) : null;
		} catch {
			/* not JSON: keep the text */
		}
		return { status: res.status, body: parsed, headers: res.headers };
	};
}

export interface TestPlatform {
	node: StartedNode;
	config: Config;
	url: string;
	api: Client;
	stop(): Promise<void>;
}

/** The whole platform in this process, as `npm start` runs it but with in-memory storage. */
export async function startTestPlatform(env: Record<string, string> = {}, opts: { dataDir?: string } = {}): Promise<TestPlatform> {
	const config = loadConfig({
		NODE_ENV: "test",
		PORT: "0",
		MQTT_PORT: "0",
		LOG_LEVEL: "error",
		ADMIN_USERNAME: ADMIN.username,
		ADMIN_PASSWORD: ADMIN.password,
		METRICS_PORT: "0",
		DEMO_SEED: "false",
		// The flows run on MongoDB too when the contract suite's MONGO_URI is set.
		...(process.env.MONGO_URI ? { MONGO_URI: process.env.MONGO_URI } : {}),
		...env,
	});
	// In memory unless a test needs its data to outlive a service it stops and starts again.
	const node = await startNode(config, { dataDir: opts.dataDir ?? null });
	const api = node.broker.getLocalService("api") as unknown as { server: { address(): AddressInfo } };
	const url = `http://127.0.0.1:${api.server.address().port}`;
	return { node, config, url, api: httpClient(url), stop: () => node.stop() };
}

let phoneCounter = 0;
/** A fresh valid mainland mobile number per call. */
export function newPhone(): string {
	phoneCounter++;
	return `139${String(process.pid % 10000).padStart(4, "0")}${String(phoneCounter).padStart(4, "0")}`;
}

/** Waits for a condition that an event or message will make true (polling the in-process state, no fixed sleeps). */
export async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, ms = 8000): Promise<T> {
	const end = Date.now() + ms;
	for (;;) {
		const v = await probe();
		if (v) return v;
		if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
		await new Promise(r => setTimeout(r, 20));
	}
}
