/**
 * Who can read /metrics, and what it tells: in production only the node's
 * metrics port (bound to METRICS_HOST, 127.0.0.1 by default) or a bearer of
 * METRICS_TOKEN on the API port; never the OS user, home directory, network
 * addresses, MAC addresses or command line.
 */
import type { AddressInfo } from "node:net";
import { startTestPlatform, type TestPlatform } from "../support/platform";

const PRODUCTION = {
	NODE_ENV: "production",
	LOG_LEVEL: "fatal",
	JWT_SECRET: "j".repeat(40),
	SANDBOX_PAY_SECRET: "s".repeat(40),
	CABINET_SECRET_KEY: "c".repeat(40),
	MQTT_PASSWORD: "m".repeat(40),
	MQTT_HOOK_SECRET: "h".repeat(40),
	ADMIN_PASSWORD: "a-production-admin-pass",
};

function metricsPort(p: TestPlatform): AddressInfo {
	const reporter = (p.node.broker.metrics as any).reporter.find((r: any) => r.server);
	return reporter.server.address();
}

describe("metrics in production", () => {
	let p: TestPlatform;
	const jestEnv = process.env.NODE_ENV;
	beforeAll(async () => {
		// Moleculer collects the process and OS metrics only outside NODE_ENV=test.
		process.env.NODE_ENV = "production";
		p = await startTestPlatform(PRODUCTION);
	});
	afterAll(async () => {
		process.env.NODE_ENV = jestEnv;
		await p.stop();
	});

	it("are not served on the API port", async () => {
		expect((await p.api("GET", "/metrics")).status).toBe(404);
	});

	it("are served on the metrics port, bound to 127.0.0.1, without host-identifying series", async () => {
		const addr = metricsPort(p);
		expect(addr.address).toBe("127.0.0.1");
		const text = await (await fetch(`http://127.0.0.1:${addr.port}/metrics`)).text();
		expect(text).toContain("moleculer_request_total");
		expect(text).toContain("process_memory_rss");
		expect(text).toContain("os_type");
		for (const leak of ["os_user_", "os_hostname", "os_network_", "process_arguments", process.env.HOME ?? "/root"]) expect(text).not.toContain(leak);
	});
});

describe("metrics with a bearer token", () => {
	let p: TestPlatform;
	const token = "t".repeat(40);
	beforeAll(async () => {
		p = await startTestPlatform({ ...PRODUCTION, METRICS_TOKEN: token });
	});
	afterAll(() => p.stop());

	it("opens the API port's /metrics to the token only", async () => {
		expect((await p.api("GET", "/metrics")).status).toBe(404);
		expect((await p.api("GET", "/metrics", undefined, { headers: { authorization: "Bearer wrong" } })).status).toBe(404);
		const ok = await p.api("GET", "/metrics", undefined, { token });
		expect(ok.status).toBe(200);
		expect(String(ok.body)).toContain("moleculer_request_total");
	});
});
