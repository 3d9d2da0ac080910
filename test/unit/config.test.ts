import { ConfigError, DEV_JWT_SECRET, loadConfig } from "../../config";

const prod = {
	NODE_ENV: "production", JWT_SECRET: "x".repeat(40), ADMIN_PASSWORD: "Str0ng-admin-pw", SANDBOX_PAY_SECRET: "sandbox-secret-prod",
	CABINET_SECRET_KEY: "k".repeat(40), MQTT_PASSWORD: "mqtt-platform-pw", MQTT_HOOK_SECRET: "hook-secret-prod",
};

function problems(env: Record<string, string>): string[] {
	try {
		loadConfig(env);
	} catch (err) {
		if (err instanceof ConfigError) return err.problems;
		throw err;
	}
	return [];
}

describe("configuration", () => {
	it("has safe development defaults: embedded, all services, port 3000", () => {
		const c = loadConfig({});
		expect(c).toMatchObject({ env: "development", port: 3000, mqttPort: 1883, transporter: undefined, heartbeatSec: 30, reservationTtlSec: 900, demoSeed: true });
		expect(c.services).toEqual(expect.arrayContaining(["api", "users"]));
		expect(c.auth.jwtSecret).toBe(DEV_JWT_SECRET);
	});

	it("reads DingTalk robots from DINGTALK_ROBOTS or the single-robot variables, and says what is wrong with them", () => {
		const robots = [{ name: "ops", url: "https://oapi.dingtalk.com/robot/send?access_token=a", secret: "SECa", fallback: "p1" }, { name: "p1", url: "https://oapi.dingtalk.com/robot/send?access_token=b", severities: ["P1"], atMobiles: ["13900000000"] }];
		expect(loadConfig({ DINGTALK_ROBOTS: JSON.stringify(robots) }).alerts.robots).toEqual(robots);
		expect(loadConfig({ DINGTALK_WEBHOOK_URL: "https://oapi.dingtalk.com/robot/send?access_token=c", DINGTALK_SECRET: "SECc", DINGTALK_KEYWORD: "告警" }).alerts.robots).toEqual([
			{ name: "default", url: "https://oapi.dingtalk.com/robot/send?access_token=c", secret: "SECc", keyword: "告警" },
		]);
		expect(loadConfig({}).alerts).toMatchObject({ robots: [], rate: { perWindow: 20, windowMs: 60_000 }, pauseMs: 600_000, timing: { P1: { groupWaitMs: 5000, groupIntervalMs: 60_000, repeatIntervalMs: 1_800_000 } } });
		expect(problems({ DINGTALK_ROBOTS: "[{" })).toEqual([expect.stringMatching(/^DINGTALK_ROBOTS must be a JSON list/)]);
		expect(problems({ DINGTALK_ROBOTS: JSON.stringify([{ name: "a", url: "ftp://x" }]) })).toEqual([expect.stringMatching(/needs a name and an http\(s\) url/)]);
		expect(problems({ DINGTALK_ROBOTS: JSON.stringify([{ ...robots[1], severities: ["P0"] }]) })).toEqual([expect.stringMatching(/severities must be a list of P1, P2, P3/)]);
		expect(problems({ DINGTALK_ROBOTS: JSON.stringify([robots[0]]) })).toEqual(["DingTalk robot ops: fallback p1 is not a configured robot"]);
		expect(problems({ ALERTS_TIMING: "{nope" })).toEqual([expect.stringMatching(/^ALERTS_TIMING must be JSON/)]);
		expect(problems({ ALERTS_TIMING: JSON.stringify({ P2: { groupWaitMs: -1 } }) })).toEqual([expect.stringMatching(/^ALERTS_TIMING must be JSON/)]);
		expect(loadConfig({ ALERTS_TIMING: JSON.stringify({ P2: { groupWaitMs: 100 } }) }).alerts.timing.P2).toEqual({ groupWaitMs: 100, groupIntervalMs: 300_000, repeatIntervalMs: 14_400_000 });
	});

	it("accepts a valid production environment", () => {
		expect(problems(prod)).toEqual([]);
	});

	it("refuses to start in production with the default JWT secret or no admin password", () => {
		const { JWT_SECRET: _j, ADMIN_PASSWORD: _a, ...rest } = prod;
		const p = problems(rest);
		expect(p).toContain("JWT_SECRET must be set in production");
		expect(p).toContain("ADMIN_PASSWORD must be set in production");
		expect(problems({ ...prod, JWT_SECRET: "short" })).toContain("JWT_SECRET must be at least 32 characters in production");
		expect(problems({ ...prod, ADMIN_PASSWORD: "admin12345" })).toEqual([expect.stringMatching(/well-known default/)]);
		const { CABINET_SECRET_KEY: _k, MQTT_PASSWORD: _p, MQTT_HOOK_SECRET: _h, ...withoutDeviceSecrets } = prod;
		expect(problems(withoutDeviceSecrets)).toEqual([
			"CABINET_SECRET_KEY must be set in production", "MQTT_PASSWORD must be set in production", "MQTT_HOOK_SECRET must be set in production",
		]);
		expect(problems({ ...prod, CABINET_SECRET_KEY: "short" })).toEqual(["CABINET_SECRET_KEY must be at least 32 characters in production"]);
	});

	it("lists every bad variable at once", () => {
		const p = problems({ PORT: "http", HEARTBEAT_SEC: "0", TRANSPORTER: "amqp://x", SERVICES: "api,nope", DEMO_SEED: "maybe" });
		for (const name of ["PORT", "HEARTBEAT_SEC", "TRANSPORTER", "SERVICES", "DEMO_SEED"]) {
			expect(p.filter(x => x.startsWith(`${name} `))).not.toHaveLength(0);
		}
	});

	it("chooses a service subset only on a mesh", () => {
		expect(problems({ SERVICES: "users" })).toEqual([expect.stringMatching(/needs TRANSPORTER/)]);
		expect(loadConfig({ SERVICES: "users", TRANSPORTER: "nats://127.0.0.1:4222" }).services).toEqual(["users"]);
	});
});
