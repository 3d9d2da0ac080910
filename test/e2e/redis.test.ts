/**
 * Two gateway processes and one users process on the real NATS and Redis of
 * this machine: the rate limiter and the cacher share their state through
 * Redis, so a budget spent at one gateway is spent at the other, and a
 * session signed out through one gateway is refused by a gateway that
 * started afterwards. Sign-in attempts are reserved in Redis before the
 * password is checked, so a parallel burst cannot outrun the lockout.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import IORedis from "ioredis";
import { httpClient, type Client } from "../support/platform";
import { freePort, spawnNode, waitFor, waitForHttp, type NodeProcess } from "../support/processes";

jest.setTimeout(120_000);

const NATS = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const REDIS = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

describe("shared state between gateway processes through real Redis", () => {
	const namespace = `e2e-redis-${process.pid}`;
	const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lockers-redis-"));
	const redis = new IORedis(REDIS);
	const nodes: NodeProcess[] = [];
	const common = { TRANSPORTER: NATS, REDIS_URL: REDIS, NAMESPACE: namespace, ADMIN_PASSWORD: "redis-admin-pass-1", RATE_LIMIT_USER: "10", RATE_LIMIT_AUTH: "1000" };

	async function startGateway(name: string): Promise<Client> {
		const port = await freePort();
		const node = spawnNode(name, { ...common, SERVICES: "api", PORT: String(port) });
		nodes.push(node);
		const api = httpClient(`http://127.0.0.1:${port}`);
		await waitForHttp(`http://127.0.0.1:${port}/api/v1/ready`, s => s === 200, 30_000, node);
		await waitFor(`${name} sees users`, async () => ((await api("POST", "/api/v1/auth/login", { login: "nobody", password: "x" })).status === 401 ? true : undefined));
		return api;
	}

	async function keys(pattern: string) {
		return redis.keys(pattern);
	}

	beforeAll(async () => {
		const healthPort = await freePort();
		const users = spawnNode("users", { ...common, SERVICES: "users", DATA_DIR: dataDir, HEALTH_PORT: String(healthPort) });
		nodes.push(users);
		await waitForHttp(`http://127.0.0.1:${healthPort}/ready`, s => s === 200, 30_000, users);
	});

	afterAll(async () => {
		await Promise.all(nodes.map(n => n.stop()));
		const ours = [...(await keys(`${namespace}*`)), ...(await keys(`MOL-${namespace}*`))];
		if (ours.length) await redis.del(...ours);
		redis.disconnect();
		fs.rmSync(dataDir, { recursive: true, force: true });
	});

	it("the per-user rate limit is one budget across both gateways", async () => {
		const a = await startGateway("gateway-a");
		const b = await startGateway("gateway-b");
		const token = (await a("POST", "/api/v1/auth/register", { phone: "13500005678", password: "redis-pass-123" })).body.accessToken;

		const statuses: number[] = [];
		for (let i = 0; i < 6; i++) {
			statuses.push((await a("GET", "/api/v1/me", undefined, { token })).status);
			statuses.push((await b("GET", "/api/v1/me", undefined, { token })).status);
		}
		expect(statuses.filter(s => s === 200)).toHaveLength(10);
		expect(statuses.slice(-2)).toEqual([429, 429]);
		expect(await keys(`${namespace}:rl-user:*`)).toHaveLength(1);
		// /me answers are cached in Redis too (the users node's cacher).
		expect((await keys(`*${namespace}*users.me*`)).length).toBeGreaterThan(0);
	});

	it("a gateway started after a sign-out refuses that session's access token", async () => {
		const a = await startGateway("gateway-c");
		// A second account: the first one spent its per-user budget above.
		expect((await a("POST", "/api/v1/auth/register", { phone: "13500005679", password: "redis-pass-456" })).status).toBe(201);
		const login = await a("POST", "/api/v1/auth/login", { login: "13500005679", password: "redis-pass-456" });
		expect(login.status).toBe(200);
		expect((await a("POST", "/api/v1/auth/logout", undefined, { token: login.body.accessToken })).status).toBe(204);
		await waitFor("revocation written to the shared cacher", async () => ((await keys(`*${namespace}*auth.revoked:*`)).length > 0 ? true : undefined));

		const late = await startGateway("gateway-d");
		expect(await late("GET", "/api/v1/me", undefined, { token: login.body.accessToken })).toMatchObject({ status: 401, body: { type: "SESSION_REVOKED" } });
	});

	it("24 parallel sign-ins for one account through two gateways: no more passwords checked than the throttle allows", async () => {
		const a = await startGateway("gateway-e");
		const b = await startGateway("gateway-f");
		const phone = "13500005680";
		expect((await a("POST", "/api/v1/auth/register", { phone, password: "redis-pass-789" })).status).toBe(201);
		const attempts = Array.from({ length: 24 }, (_, i) => (i % 2 ? a : b)("POST", "/api/v1/auth/login", { login: phone, password: i === 23 ? "redis-pass-789" : `wrong-pass-${i}` }));
		const statuses = (await Promise.all(attempts)).map(r => r.status);
		const checked = statuses.filter(s => s === 401 || s === 200).length;
		// Defaults: the slow-down starts at the 5th attempt in a row, the lock after 10.
		expect(checked).toBeLessThanOrEqual(5);
		expect(statuses.filter(s => s === 429)).toHaveLength(24 - checked);
		expect(await keys(`${namespace}:login-acct:*`)).not.toHaveLength(0);
	});
});
