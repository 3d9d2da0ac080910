/**
 * /ready says whether this node can do its work: every service it hosts
 * running and ready by its own check (geo's index loaded, the door store, the
 * MQTT broker, the databases), not only the process being up.
 */
import net from "node:net";
import type { Middleware } from "moleculer";
import { loadConfig } from "../../config";
import { createBrokerOptions } from "../../moleculer.config";
import { startNode } from "../../server";
import { checkReadiness } from "../../lib/readiness";
import { ADMIN, httpClient, startTestPlatform, until, type TestPlatform } from "../support/platform";

const testEnv = (port: number) => ({
	NODE_ENV: "test", PORT: String(port), MQTT_PORT: "0", LOG_LEVEL: "error", METRICS_PORT: "0", DEMO_SEED: "false",
	ADMIN_USERNAME: ADMIN.username, ADMIN_PASSWORD: ADMIN.password,
});

describe("a running embedded platform", () => {
	let p: TestPlatform;
	beforeAll(async () => {
		p = await startTestPlatform();
	});
	afterAll(() => p.stop());

	it("is ready, with every service it hosts checked by name", async () => {
		const r = await p.api("GET", "/api/v1/ready");
		expect(r.status).toBe(200);
		expect(r.body).toMatchObject({
			ready: true,
			checks: { services: "ok", geo: "ok", doors: "ok", hardware: "ok", merchants: "ok", users: "ok", orders: "ok", billing: "ok", alerts: "ok" },
		});
		expect(r.body.degraded).toBeUndefined();
	});

	it("stays ready but lists a remote service its routes need that has no node (degraded)", async () => {
		const r = await checkReadiness(p.node.broker, p.config, { needs: ["geo", "ghost"] });
		expect(r).toMatchObject({ ready: true, degraded: ["ghost"] });
	});

	it("is not ready once geo, which it hosts, is stopped", async () => {
		await p.node.broker.destroyService(p.node.broker.getLocalService("geo")!);
		const r = await p.api("GET", "/api/v1/ready");
		expect(r.status).toBe(503);
		expect(r.body).toMatchObject({ ready: false, checks: { geo: "not running on this node", doors: "ok" } });
	});
});

describe("an embedded platform whose geo index is still loading", () => {
	it("answers 503 naming geo until the index is loaded, then 200", async () => {
		const port = await new Promise<number>((resolve, reject) => {
			const s = net.createServer().listen(0, "127.0.0.1", () => {
				const { port } = s.address() as net.AddressInfo;
				s.close(() => resolve(port));
			}).on("error", reject);
		});
		const config = loadConfig(testEnv(port));
		// Holds geo's snapshot read (merchants.pointsPage) until the test lets it go.
		let release!: () => void;
		const held = new Promise<void>(resolve => (release = resolve));
		let asked = false;
		const holdSnapshot: Middleware = {
			localAction(next: any, action: any) {
				if (action.name !== "merchants.pointsPage") return next;
				return async (ctx: any) => {
					asked = true;
					await held;
					return next(ctx);
				};
			},
		} as Middleware;
		const starting = startNode(config, { dataDir: null, brokerOverrides: { middlewares: [...(createBrokerOptions(config).middlewares ?? []), holdSnapshot] } });
		const api = httpClient(`http://127.0.0.1:${port}`);
		try {
			await until("geo reading its snapshot", () => asked, 15_000);
			const loading = await until("the gateway answering", () => api("GET", "/api/v1/ready").catch(() => undefined), 15_000);
			expect(loading.status).toBe(503);
			expect(loading.body).toMatchObject({ ready: false, checks: { geo: "the point index is still loading" } });
			release();
			await starting;
			const ready = await api("GET", "/api/v1/ready");
			expect(ready).toMatchObject({ status: 200, body: { ready: true, checks: { geo: "ok" } } });
		} finally {
			release();
			await (await starting).stop();
		}
	}, 40_000);
});
