/**
 * The gateway and `users` as two processes on the real NATS server of this
 * machine: the auth flow across the mesh, then the users node goes away
 * (gracefully, then by kill -9) and the gateway answers 503 quickly instead
 * of hanging, and recovers when users is back.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { httpClient, type Client } from "../support/platform";
import { freePort, spawnNode, waitFor, waitForHttp, type NodeProcess } from "../support/processes";

jest.setTimeout(120_000);

const NATS = process.env.NATS_URL ?? "nats://127.0.0.1:4222";
const REQUEST_TIMEOUT_MS = 2000;

describe("gateway and users on separate nodes over real NATS", () => {
	const namespace = `e2e-mesh-${process.pid}`;
	const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "lockers-mesh-"));
	let gateway: NodeProcess;
	let users: NodeProcess | undefined;
	let api: Client;
	const common = { TRANSPORTER: NATS, NAMESPACE: namespace, ADMIN_PASSWORD: "mesh-admin-pass-1" };

	async function startUsers() {
		const healthPort = await freePort();
		users = spawnNode("users", { ...common, SERVICES: "users", DATA_DIR: dataDir, HEALTH_PORT: String(healthPort) });
		await waitForHttp(`http://127.0.0.1:${healthPort}/ready`, s => s === 200, 30_000, users);
		// The gateway sees the new node once its INFO packet has crossed the mesh.
		await waitFor("users reachable through the gateway", async () => {
			const r = await api("POST", "/api/v1/auth/login", { login: "nobody", password: "x" });
			return r.status === 401 ? true : undefined;
		});
	}

	beforeAll(async () => {
		const port = await freePort();
		gateway = spawnNode("gateway", { ...common, SERVICES: "api", PORT: String(port), REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS) });
		api = httpClient(`http://127.0.0.1:${port}`);
		await waitForHttp(`http://127.0.0.1:${port}/api/v1/ready`, s => s === 200, 30_000, gateway);
		await startUsers();
	});

	afterAll(async () => {
		await users?.kill9();
		await gateway?.stop();
		fs.rmSync(dataDir, { recursive: true, force: true });
	});

	it("register → login → /me → refresh → logout across the mesh", async () => {
		const reg = await api("POST", "/api/v1/auth/register", { phone: "13600001234", password: "mesh-pass-123" });
		expect(reg.status).toBe(201);
		const login = await api("POST", "/api/v1/auth/login", { login: "13600001234", password: "mesh-pass-123" });
		expect(login.status).toBe(200);
		expect((await api("GET", "/api/v1/me", undefined, { token: login.body.accessToken })).body).toMatchObject({ id: reg.body.user.id, phone: "+8613600001234" });
		const refreshed = await api("POST", "/api/v1/auth/refresh", { refreshToken: login.body.refreshToken });
		expect(refreshed.status).toBe(200);
		expect((await api("POST", "/api/v1/auth/logout", undefined, { token: refreshed.body.accessToken })).status).toBe(204);
		// The revocation event crossed the mesh to the gateway.
		expect((await api("GET", "/api/v1/me", undefined, { token: refreshed.body.accessToken })).body.type).toBe("SESSION_REVOKED");
	});

	it("answers 503 at once when users stops, and recovers when it is back", async () => {
		const token = (await api("POST", "/api/v1/auth/login", { login: "13600001234", password: "mesh-pass-123" })).body.accessToken;
		expect(await users!.stop()).toBe(0);

		const t0 = Date.now();
		const r = await api("GET", "/api/v1/me", undefined, { token });
		expect(r).toMatchObject({ status: 503, body: { type: "SERVICE_UNAVAILABLE" } });
		expect(r.headers.get("retry-after")).toBe("1");
		expect(Date.now() - t0).toBeLessThan(500);

		await startUsers();
		expect((await api("GET", "/api/v1/me", undefined, { token })).status).toBe(200);
	});

	it("answers 503 within the request timeout when users is killed, then fast once the breaker opens", async () => {
		const token = (await api("POST", "/api/v1/auth/login", { login: "13600001234", password: "mesh-pass-123" })).body.accessToken;
		await users!.kill9();

		// The breaker's failure window restarts every windowTime, so allow up to two windows' worth
		// of slow answers before it must have tripped.
		const times: number[] = [];
		let fastInARow = 0;
		while (fastInARow < 3 && times.length < 15) {
			const t0 = Date.now();
			const r = await api("GET", "/api/v1/me", undefined, { token });
			times.push(Date.now() - t0);
			expect(r).toMatchObject({ status: 503, body: { type: "SERVICE_UNAVAILABLE" } });
			fastInARow = times[times.length - 1] < 300 ? fastInARow + 1 : 0;
		}
		// Never a hang: every answer within the timeout (plus slack for a loaded machine)…
		for (const t of times) expect(t).toBeLessThan(REQUEST_TIMEOUT_MS + 1500);
		// …and once the circuit breaker has seen enough failures, immediately.
		expect(fastInARow).toBe(3);

		await startUsers();
		await waitFor("recovery after the crash", async () => ((await api("GET", "/api/v1/me", undefined, { token })).status === 200 ? true : undefined), 30_000);
	});
});
